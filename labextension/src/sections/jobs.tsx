/** Jobs: distributed training jobs with their state, ranks and age, a stop button, and the Dask cluster. */
import * as React from 'react';

import { Cluster, Job, post, ws } from '../api';
import { ErrorLine, LoadState, Section, SectionProps, StateBadge, age, formatBytes, useAction, useEndpoint } from '../common';

const ACTIVE = new Set(['created', 'queuing', 'dispatching', 'starting', 'running', 'stopping']);

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
  const loaded = useEndpoint<Job[]>(ws(props.workspace, 'jobs'), props.refreshKey, 10000);
  const jobs = loaded.data || [];
  const action = useAction(loaded.reload);
  return (
    <Section title="Jobs" id="jobs" count={loaded.data ? jobs.length : undefined}>
      <LoadState loaded={loaded} isEmpty={jobs.length === 0} empty="No jobs yet: submit one with %pai dlc submit tfjob." />
      {jobs.length > 0 && (
        <ul className="pai-list">
          {jobs.map(job => (
            <li className="pai-row" key={job.id} data-job={job.id}>
              <div className="pai-row-line">
                <span className="pai-name" title={job.id}>
                  {job.name || job.id}
                </span>
                <StateBadge state={job.state} />
              </div>
              <div className="pai-row-line">
                <span className="pai-muted">
                  {ranks(job)} · {age(job.created_at)} · {job.created_by}
                </span>
                {ACTIVE.has(job.state.toLowerCase()) && (
                  <button
                    className="pai-button"
                    disabled={action.busy === job.id}
                    onClick={() => action.run(job.id, () => post(ws(props.workspace, 'jobs', job.id, 'stop')))}
                  >
                    Stop
                  </button>
                )}
              </div>
              {job.reason && <div className="pai-muted pai-ellipsis" title={job.reason}>{job.reason}</div>}
            </li>
          ))}
        </ul>
      )}
      {action.error && <ErrorLine message={action.error} />}
      <ClusterView refreshKey={props.refreshKey} />
    </Section>
  );
}

function ClusterView(props: { refreshKey: number }): JSX.Element {
  const loaded = useEndpoint<Cluster>('cluster', props.refreshKey, 30000);
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
          {cluster.scheduler_address && <div className="pai-muted pai-ellipsis">{cluster.scheduler_address}</div>}
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
