/** Datasets: the workspace's registered data, its versions, a register form, a preview cell. */
import * as React from 'react';

import { age, formatBytes, pyString, ws } from '../format';
import { ApiError, Dataset, DatasetVersion, post } from '../api';
import { ErrorLine, LoadState, Section, SectionProps, useEndpoint } from '../common';

const DATA_TYPES = ['', 'image', 'text', 'video', 'audio', 'tabular', 'other'];

export function previewCode(workspace: string, name: string): string {
  return `import pai_lab\nds = pai_lab.connect(${pyString(workspace)}).datasets.get(${pyString(name)})\nds.preview()`;
}

export function DatasetsSection(props: SectionProps): JSX.Element {
  const [localKey, setLocalKey] = React.useState(0);
  const [registering, setRegistering] = React.useState(false);
  const loaded = useEndpoint<Dataset[]>(ws(props.workspace, 'datasets'), props.refreshKey + localKey);
  const datasets = loaded.data || [];
  return (
    <Section
      title="Datasets"
      id="datasets"
      count={loaded.data ? datasets.length : undefined}
      actions={
        !loaded.error?.unavailable && (
          <button className="pai-link-button" onClick={() => setRegistering(!registering)}>
            {registering ? 'Cancel' : 'Register'}
          </button>
        )
      }
    >
      {registering && (
        <RegisterForm
          workspace={props.workspace}
          onDone={() => {
            setRegistering(false);
            setLocalKey(k => k + 1);
          }}
        />
      )}
      <LoadState
        loaded={loaded}
        isEmpty={datasets.length === 0}
        empty="No datasets yet: register a folder or an S3 prefix."
      />
      {datasets.length > 0 && (
        <ul className="pai-list">
          {datasets.map(ds => (
            <DatasetRow key={ds.id} dataset={ds} {...props} />
          ))}
        </ul>
      )}
    </Section>
  );
}

function DatasetRow(props: SectionProps & { dataset: Dataset }): JSX.Element {
  const { dataset } = props;
  const [open, setOpen] = React.useState(false);
  const [note, setNote] = React.useState<string | null>(null);
  const versions = useEndpoint<DatasetVersion[]>(
    open ? ws(props.workspace, 'datasets', dataset.name, 'versions') : null,
    props.refreshKey
  );
  const insert = () =>
    void props.insertCode(previewCode(props.workspace, dataset.name)).then(m => setNote(m || 'Preview cell inserted.'));
  return (
    <li className="pai-row" data-dataset={dataset.name}>
      <button className="pai-row-main" onClick={() => setOpen(!open)} title={dataset.source_uri}>
        <span className="pai-name">{dataset.name}</span>
        <span className="pai-tag">{dataset.data_type}</span>
        <span className="pai-muted">
          {dataset.item_count} items{dataset.total_bytes > 0 && ` · ${formatBytes(dataset.total_bytes)}`}
          {dataset.latest_version !== null && ` · v${dataset.latest_version}`}
        </span>
      </button>
      {open && (
        <div className="pai-row-detail">
          <div className="pai-muted pai-ellipsis">{dataset.source_uri}</div>
          <LoadState loaded={versions} isEmpty={(versions.data || []).length === 0} empty="No versions yet." />
          {versions.data && versions.data.length > 0 && (
            <table className="pai-table">
              <thead>
                <tr>
                  <th>version</th>
                  <th>items</th>
                  <th>age</th>
                </tr>
              </thead>
              <tbody>
                {versions.data.map(v => (
                  <tr key={v.version}>
                    <td>v{v.version}</td>
                    <td>{v.item_count}</td>
                    <td>{age(v.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <button className="pai-button" onClick={insert}>
            Preview in notebook
          </button>
          {note && <div className="pai-muted">{note}</div>}
        </div>
      )}
    </li>
  );
}

function RegisterForm(props: { workspace: string; onDone: () => void }): JSX.Element {
  const [name, setName] = React.useState('');
  const [source, setSource] = React.useState('');
  const [dataType, setDataType] = React.useState('');
  const [scan, setScan] = React.useState(true);
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body: { [key: string]: unknown } = { name: name.trim(), source: source.trim(), scan };
    if (dataType) {
      body.data_type = dataType;
    }
    post<Dataset>(ws(props.workspace, 'datasets'), body)
      .then(() => props.onDone())
      .catch(reason => setError(reason instanceof ApiError ? reason.message : String(reason)))
      .finally(() => setBusy(false));
  };

  return (
    <form className="pai-form" onSubmit={submit} aria-label="Register dataset">
      <label>
        Name
        <input
          name="dataset-name"
          value={name}
          onChange={e => setName(e.target.value)}
          placeholder="flowers"
          required
        />
      </label>
      <label>
        Source
        <input
          name="dataset-source"
          value={source}
          onChange={e => setSource(e.target.value)}
          placeholder="data/flowers or s3://bucket/prefix/"
          required
        />
      </label>
      <label>
        Type
        <select name="dataset-type" value={dataType} onChange={e => setDataType(e.target.value)}>
          {DATA_TYPES.map(t => (
            <option key={t} value={t}>
              {t || 'detect'}
            </option>
          ))}
        </select>
      </label>
      <label className="pai-check">
        <input name="dataset-scan" type="checkbox" checked={scan} onChange={e => setScan(e.target.checked)} />
        Scan the source and write its manifest
      </label>
      {error && <ErrorLine message={error} />}
      <button className="pai-button pai-primary" type="submit" disabled={busy}>
        {busy ? 'Registering…' : 'Register'}
      </button>
    </form>
  );
}
