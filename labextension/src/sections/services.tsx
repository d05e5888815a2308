/** Services: model services with state, ready instances, traffic split, endpoint; start and stop. */
import { Clipboard } from '@jupyterlab/apputils';
import * as React from 'react';

import { pyString, ws } from '../format';
import { Service, patch, post } from '../api';
import { ErrorLine, LoadState, Section, SectionProps, StateBadge, useAction, useEndpoint } from '../common';

const STOPPED = new Set(['stopped', 'failed', 'stopping']);

export function panelCode(workspace: string, service: string): string {
  return `import pai_lab\nsvc = pai_lab.connect(${pyString(workspace)}).services.get(${pyString(service)})\nsvc.panel()`;
}

function trafficText(traffic: Service['traffic']): string {
  if (!traffic) {
    return '';
  }
  return Object.entries(traffic)
    .map(([name, pct]) => `${name} ${pct}%`)
    .join(' · ');
}

export function ServicesSection(props: SectionProps): JSX.Element {
  const loaded = useEndpoint<Service[]>(ws(props.workspace, 'services'), props.refreshKey, props.poll.services);
  const services = loaded.data || [];
  const action = useAction(loaded.reload);
  const [copied, setCopied] = React.useState<string | null>(null);
  const [note, setNote] = React.useState<string | null>(null);

  const copy = (service: Service) => {
    Clipboard.copyToSystem(service.endpoint ?? '');
    setCopied(service.name);
  };

  return (
    <Section title="Services" id="services" count={loaded.data ? services.length : undefined}>
      <LoadState
        loaded={loaded}
        isEmpty={services.length === 0}
        empty="No services yet: deploy one with %pai eascmd create."
      />
      {services.length > 0 && (
        <ul className="pai-list">
          {services.map(service => {
            const stopped = STOPPED.has(service.state.toLowerCase());
            const verb = stopped ? 'start' : 'stop';
            return (
              <li className="pai-row" key={service.name} data-service={service.name}>
                <div className="pai-row-line">
                  <span className="pai-name">{service.name}</span>
                  <StateBadge state={service.state} />
                </div>
                <div className="pai-row-line">
                  <span className="pai-muted">
                    {service.instances_ready}/{service.instances_total} ready
                    {service.traffic && ` · ${trafficText(service.traffic)}`}
                  </span>
                  <button
                    className="pai-button"
                    disabled={action.busy === service.name}
                    onClick={() =>
                      action.run(service.name, () => post(ws(props.workspace, 'services', service.name, verb)))
                    }
                  >
                    {stopped ? 'Start' : 'Stop'}
                  </button>
                </div>
                <ScaleControl
                  service={service}
                  busy={action.busy === service.name}
                  onScale={instances =>
                    action.run(service.name, () =>
                      patch(ws(props.workspace, 'services', service.name), { metadata: { instance: instances } })
                    )
                  }
                />
                {service.endpoint && (
                  <div className="pai-row-line">
                    <code className="pai-ellipsis" title={service.endpoint}>
                      {service.endpoint}
                    </code>
                    <button className="pai-link-button" onClick={() => copy(service)}>
                      {copied === service.name ? 'Copied' : 'Copy'}
                    </button>
                  </div>
                )}
                <button
                  className="pai-button"
                  onClick={() =>
                    void props
                      .insertCode(panelCode(props.workspace, service.name))
                      .then(m => setNote(m || 'Service panel cell inserted.'))
                  }
                >
                  Panel in notebook
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {action.error && <ErrorLine message={action.error} />}
      {note && <div className="pai-muted">{note}</div>}
    </Section>
  );
}

function ScaleControl(props: { service: Service; busy: boolean; onScale: (instances: number) => void }): JSX.Element {
  const [instances, setInstances] = React.useState(props.service.instances_total);
  React.useEffect(() => setInstances(props.service.instances_total), [props.service.instances_total]);
  return (
    <div className="pai-row-line">
      <label className="pai-muted">
        instances{' '}
        <input
          className="pai-number"
          type="number"
          min={0}
          value={instances}
          onChange={e => setInstances(Math.max(0, parseInt(e.target.value, 10) || 0))}
        />
      </label>
      {instances !== props.service.instances_total && (
        <button className="pai-button" disabled={props.busy} onClick={() => props.onScale(instances)}>
          Scale
        </button>
      )}
    </div>
  );
}
