/** Pipelines: the workspace's runs with their PAI state, progress and timing; per run its DAG, a step's log
 * tail, and Terminate / Suspend / Resume / Retry as the member's roles allow. */
import * as React from 'react';

import { age, pyString } from '../format';
import {
  NodeLogLine,
  PipelineRun,
  PipelineRunDetail,
  RolesDocument,
  pipelineLogTailPath,
  pipelineRunAction,
  pipelineRunPath,
  pipelineRunsPath
} from '../api';
import { ErrorLine, LoadState, Section, SectionProps, useAction, useEndpoint } from '../common';
import { DagLayout, duration, isActive, layoutDag, runActions, stateTone, stepsText } from '../pipelines';

const LOG_TAIL = 40;

export function runCode(workspace: string, runId: string): string {
  return `import pai_lab\nrun = pai_lab.connect(${pyString(workspace)}).pipelines.get(${pyString(runId)})\nrun`;
}

/** A PAI state as a badge coloured by what it means (done, failed, stopped, moving, not run). */
export function PipelineState(props: { state: string; cached?: boolean }): JSX.Element {
  return (
    <span className={`pai-state pai-tone-${stateTone(props.state)}`} data-state={props.state}>
      {props.state}
      {props.cached ? ' (cached)' : ''}
    </span>
  );
}

export function PipelinesSection(props: SectionProps & { username: string; roles: string[] }): JSX.Element {
  const loaded = useEndpoint<PipelineRun[]>(pipelineRunsPath(props.workspace), props.refreshKey, props.poll.pipelines);
  const matrix = useEndpoint<RolesDocument>('roles', props.refreshKey).data?.matrix;
  const runs = loaded.data || [];
  const action = useAction(loaded.reload);
  return (
    <Section title="Pipelines" id="pipelines" count={loaded.data ? runs.length : undefined}>
      <LoadState
        loaded={loaded}
        isEmpty={runs.length === 0}
        empty="No pipeline runs yet: run one with pipeline.run() or pai pipeline run."
      />
      {runs.length > 0 && (
        <ul className="pai-list">
          {runs.map(run => (
            <RunRow
              key={run.id}
              run={run}
              {...props}
              buttons={runActions(run.status, run.created_by, matrix, props.roles, props.username)}
              busy={action.busy === run.id}
              onAction={verb => action.run(run.id, () => pipelineRunAction(props.workspace, run.id, verb))}
            />
          ))}
        </ul>
      )}
      {action.error && <ErrorLine message={action.error} />}
    </Section>
  );
}

function RunRow(
  props: SectionProps & {
    run: PipelineRun;
    buttons: ReturnType<typeof runActions>;
    busy: boolean;
    onAction: (verb: 'terminate' | 'suspend' | 'resume' | 'retry') => void;
  }
): JSX.Element {
  const { run } = props;
  const [open, setOpen] = React.useState(false);
  const [note, setNote] = React.useState<string | null>(null);
  const timing = run.started_at
    ? `started ${age(run.started_at)} ago · ${duration(run.started_at, run.finished_at)}`
    : `created ${age(run.created_at)} ago`;
  return (
    <li className="pai-row" data-run={run.id}>
      <button className="pai-row-main pai-row-line" onClick={() => setOpen(!open)} title={run.id}>
        <span className="pai-name">{run.name || run.id}</span>
        <PipelineState state={run.status} />
      </button>
      <div className="pai-muted pai-run-progress">
        <span className="pai-steps">{stepsText(run.steps_done, run.steps_total)}</span> · {timing} · {run.created_by}
      </div>
      {props.buttons.length > 0 && (
        <div className="pai-row-line pai-run-actions">
          {props.buttons.map(b => (
            <button
              key={b.verb}
              className="pai-button"
              disabled={!b.enabled || props.busy}
              title={b.title}
              onClick={() => props.onAction(b.verb)}
            >
              {b.label}
            </button>
          ))}
        </div>
      )}
      {run.reason && (
        <div className="pai-muted pai-ellipsis" title={run.reason}>
          {run.reason}
        </div>
      )}
      {open && (
        <div className="pai-row-detail">
          <RunDetail {...props} />
          <button
            className="pai-button"
            onClick={() =>
              void props.insertCode(runCode(props.workspace, run.id)).then(m => setNote(m || 'Run cell inserted.'))
            }
          >
            Open in notebook
          </button>
          {note && <div className="pai-muted">{note}</div>}
        </div>
      )}
    </li>
  );
}

function RunDetail(props: SectionProps & { run: PipelineRun }): JSX.Element {
  const { run } = props;
  const active = isActive(run.status);
  const detail = useEndpoint<PipelineRunDetail>(
    pipelineRunPath(props.workspace, run.id),
    props.refreshKey,
    active ? props.poll.pipelines : 0
  );
  const [step, setStep] = React.useState<string | null>(null);
  const nodes = detail.data?.nodes || [];
  // a run whose state changes while it is open is read again at once, so its steps' last states show
  const seen = React.useRef(run.status);
  React.useEffect(() => {
    if (seen.current !== run.status) {
      seen.current = run.status;
      detail.reload();
    }
  }, [run.status]);
  return (
    <>
      <LoadState loaded={detail} isEmpty={nodes.length === 0} empty="This run has no steps." />
      {nodes.length > 0 && <Dag layout={layoutDag(nodes)} selected={step} onSelect={setStep} />}
      {nodes.length > 0 && (
        <label className="pai-muted pai-step-pick">
          Log of{' '}
          <select value={step || ''} onChange={e => setStep(e.target.value || null)} aria-label="Step">
            <option value="">choose a step</option>
            {nodes.map(n => (
              <option key={n.name} value={n.name}>
                {n.name} ({n.status})
              </option>
            ))}
          </select>
        </label>
      )}
      {step && <StepLog {...props} step={step} live={active} />}
    </>
  );
}

function Dag(props: { layout: DagLayout; selected: string | null; onSelect: (name: string) => void }): JSX.Element {
  const { layout } = props;
  return (
    <svg
      className="pai-dag"
      viewBox={`0 0 ${layout.width} ${layout.height}`}
      width="100%"
      style={{ maxWidth: layout.width }}
      role="img"
      aria-label="The run's steps"
    >
      {layout.edges.map(e => (
        <line key={`${e.from}>${e.to}`} className="pai-dag-edge" x1={e.x1} y1={e.y1} x2={e.x2} y2={e.y2} />
      ))}
      {layout.boxes.map(b => (
        <g
          key={b.name}
          className={`pai-dag-node pai-tone-${b.tone}${props.selected === b.name ? ' pai-dag-selected' : ''}`}
          data-step={b.name}
          data-state={b.status}
          transform={`translate(${b.x},${b.y})`}
          onClick={() => props.onSelect(b.name)}
        >
          <title>{`${b.name}: ${b.status}${b.cached ? ' (cached)' : ''}`}</title>
          <rect width={layout.boxWidth} height={layout.boxHeight} rx={4} />
          <text x={layout.boxWidth / 2} y={layout.boxHeight / 2} dominantBaseline="central" textAnchor="middle">
            {b.name.length > 16 ? b.name.slice(0, 15) + '…' : b.name}
          </text>
        </g>
      ))}
    </svg>
  );
}

function StepLog(props: SectionProps & { run: PipelineRun; step: string; live: boolean }): JSX.Element {
  const logs = useEndpoint<NodeLogLine[]>(
    pipelineLogTailPath(props.workspace, props.run.id, props.step, LOG_TAIL),
    props.refreshKey,
    props.live ? props.poll.pipelines : 0
  );
  const lines = logs.data || [];
  return (
    <div className="pai-step-log" data-log={props.step}>
      <LoadState loaded={logs} isEmpty={lines.length === 0} empty="No log lines yet." />
      {lines.length > 0 && <pre className="pai-log">{lines.map(l => l.line).join('\n')}</pre>}
    </div>
  );
}
