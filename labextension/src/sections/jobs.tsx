/** Jobs: distributed training jobs with their state, ranks and age, a stop button, and the Dask cluster. */
import * as React from 'react';

import { age, formatBytes, pyString, ws } from '../format';
import { Cluster, Job, LogLine, post } from '../api';
import { ErrorLine, LoadState, Section, SectionProps, StateBadge, useAction, useEndpoint } from '../common';

const STOPPABLE = new Set(['creating', 'queuing', 'running']);
const ACTIVE = new Set([...STOPPABLE, 'stopping']);
const LOG_TAIL = 40;

export function monitorCode(workspace: string, jobId: string): string {
  return `import pai_lab\njob = pai_lab.connect(${pyString(workspace)}).jobs.get(${pyString(jobId)})\njob.monitor()`;
}

function ranks(job: Job): string {
  const parts = [`${job.workers} worker${job.workers === 1 ? '' : 's'}`];
  if (job.ps) {
    parts.push(`${job.ps} ps`);
  }
  if (job.chief) {
    parts.push(`${job.chief} chief`);
  }
  return parts.join(' + ');
}

export function JobsSection(props: SectionProps): JSX.Element {
  const loaded = useEndpoint<Job[]>(ws(props.workspace, 'jobs'), props.refreshKey, props.poll.jobs);
  const jobs = loaded.data || [];
  const action = useAction(loaded.reload);
  return (
    <Section title="Jobs" id="jobs" count={loaded.data ? jobs.length : undefined}>
      <LoadState
        loaded={loaded}
        isEmpty={jobs.length === 0}
        empty="No jobs yet: submit one with %pai dlc submit tfjob."
      />
      {jobs.length > 0 && (
        <ul className="pai-list">
          {jobs.map(job => (
            <JobRow
              key={job.id}
              job={job}
              {...props}
              stopping={action.busy === job.id}
              onStop={() => action.run(job.id, () => post(ws(props.workspace, 'jobs', job.id, 'stop')))}
            />
          ))}
        </ul>
      )}
      {action.error && <ErrorLine message={action.error} />}
      <ClusterView refreshKey={props.refreshKey} intervalMs={props.poll.cluster} />
    </Section>
  );
}

function JobRow(props: SectionProps & { job: Job; stopping: boolean; onStop: () => void }): JSX.Element {
  const { job } = props;
  const [open, setOpen] = React.useState(false);
  const [note, setNote] = React.useState<string | null>(null);
  const state = job.state.toLowerCase();
  const active = ACTIVE.has(state);
  const logs = useEndpoint<LogLine[]>(
    open ? `${ws(props.workspace, 'jobs', job.id, 'logs')}?max_events_num=${LOG_TAIL}` : null,
    props.refreshKey,
    active ? props.poll.jobLog : 0
  );
  return (
    <li className="pai-row" data-job={job.id}>
      <button className="pai-row-main pai-row-line" onClick={() => setOpen(!open)} title={job.id}>
        <span className="pai-name">{job.name || job.id}</span>
        <StateBadge state={job.state} />
      </button>
      <div className="pai-row-line">
        <span className="pai-muted">
          {ranks(job)} · {age(job.created_at)} · {job.created_by}
        </span>
        {STOPPABLE.has(state) && (
          <button className="pai-button" disabled={props.stopping} onClick={props.onStop}>
            {props.stopping ? 'Stopping…' : 'Stop'}
          </button>
        )}
      </div>
      {job.reason && (
        <div className="pai-muted pai-ellipsis" title={job.reason}>
          {job.reason}
        </div>
      )}
      {open && (
        <div className="pai-row-detail">
          <LoadState loaded={logs} isEmpty={(logs.data || []).length === 0} empty="No log lines yet." />
          {logs.data && logs.data.length > 0 && (
            <pre className="pai-log">{logs.data.map(l => `${l.pod}: ${l.line}`).join('\n')}</pre>
          )}
          <button
            className="pai-button"
            onClick={() =>
              void props
                .insertCode(monitorCode(props.workspace, job.id))
                .then(m => setNote(m || 'Monitor cell inserted.'))
            }
          >
            Monitor in notebook
          </button>
          {note && <div className="pai-muted">{note}</div>}
        </div>
      )}
    </li>
  );
}

function ClusterView(props: { refreshKey: number; intervalMs: number }): JSX.Element {
  const loaded = useEndpoint<Cluster>('cluster', props.refreshKey, props.intervalMs);
  const cluster = loaded.data;
  const cores = cluster ? cluster.workers.reduce((sum, w) => sum + (w.cores || 0), 0) : 0;
  const memory = cluster ? cluster.workers.reduce((sum, w) => sum + (w.memory || 0), 0) : 0;
  const gpus = cluster ? cluster.workers.reduce((sum, w) => sum + (w.gpus || 0), 0) : 0;
  return (
    <div className="pai-cluster" data-cluster="">
      <div className="pai-subtitle">Dask cluster</div>
      <LoadState loaded={loaded} />
      {cluster && (
        <>
          <div className="pai-muted">
            {cluster.workers.length} workers · {cores} cores · {formatBytes(memory)}
            {gpus > 0 && ` · ${gpus} GPUs`}
          </div>
          {cluster.scheduler_address && (
            <div className="pai-muted pai-ellipsis" title={cluster.scheduler_address}>
              {cluster.scheduler_address.startsWith('inproc://')
                ? 'LocalCluster inside the server'
                : cluster.scheduler_address}
            </div>
          )}
          {cluster.dashboard_link && (
            <a href={cluster.dashboard_link} target="_blank" rel="noopener noreferrer">
              Open the Dask dashboard
            </a>
          )}
        </>
      )}
    </div>
  );
}
