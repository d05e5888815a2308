/** Labeling: the workspace's iTAG tasks with their progress and the caller's roles in each. */
import * as React from 'react';

import { pyString, ws } from '../format';
import { LabelingTask } from '../api';
import { LoadState, Section, SectionProps, StateBadge, useEndpoint } from '../common';

export function labelCode(workspace: string, taskId: string): string {
  return `import pai_lab\ntask = pai_lab.connect(${pyString(workspace)}).labeling.get(${pyString(taskId)})\ntask.label()`;
}

function percent(part: number, total: number): number {
  return total > 0 ? Math.min(100, Math.round((100 * part) / total)) : 0;
}

export function LabelingSection(props: SectionProps): JSX.Element {
  const loaded = useEndpoint<LabelingTask[]>(
    ws(props.workspace, 'labeling', 'tasks'),
    props.refreshKey,
    props.poll.labeling
  );
  const tasks = loaded.data || [];
  const [note, setNote] = React.useState<string | null>(null);
  return (
    <Section title="Labeling" id="labeling" count={loaded.data ? tasks.length : undefined}>
      <LoadState loaded={loaded} isEmpty={tasks.length === 0} empty="No labeling tasks yet." />
      {tasks.length > 0 && (
        <ul className="pai-list">
          {tasks.map(task => (
            <li className="pai-row" key={task.id} data-task={task.id}>
              <div className="pai-row-line">
                <span className="pai-name" title={`${task.template} · ${task.id}`}>
                  {task.name}
                </span>
                <StateBadge state={task.state} />
              </div>
              <Progress label="labeled" value={task.labeled} total={task.total} />
              <Progress label="checked" value={task.checked} total={task.total} />
              <Progress label="accepted" value={task.accepted} total={task.total} />
              <div className="pai-row-line">
                <span className="pai-muted">
                  {task.my_roles?.length ? `my roles: ${task.my_roles.join(', ')}` : 'no role in this task'}
                </span>
                <button
                  className="pai-button"
                  onClick={() =>
                    void props
                      .insertCode(labelCode(props.workspace, task.id))
                      .then(m => setNote(m || 'Labeling cell inserted.'))
                  }
                >
                  Label in notebook
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      {note && <div className="pai-muted">{note}</div>}
    </Section>
  );
}

function Progress(props: { label: string; value: number; total: number }): JSX.Element {
  const pct = percent(props.value, props.total);
  return (
    <div className="pai-progress" title={`${props.label}: ${props.value} of ${props.total}`}>
      <span className="pai-progress-label">{props.label}</span>
      <span className="pai-progress-bar">
        <span className="pai-progress-fill" style={{ width: `${pct}%` }} />
      </span>
      <span className="pai-progress-value">
        {props.value}/{props.total}
      </span>
    </div>
  );
}
