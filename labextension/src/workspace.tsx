/** The workspace part of the panel: the switcher, the members and their roles, a create form. */
import * as React from 'react';

import { ws } from './format';
import { ApiError, Member, Workspace, post } from './api';
import { ErrorLine, LoadState, Section, useEndpoint } from './common';

export function WorkspaceSwitcher(props: {
  workspaces: Workspace[];
  current: string;
  onChange: (name: string) => void;
}): JSX.Element {
  const current = props.workspaces.find(w => w.name === props.current);
  return (
    <div className="pai-switcher">
      <label className="pai-switcher-label" htmlFor="pai-workspace-select">
        Workspace
      </label>
      <select
        id="pai-workspace-select"
        className="pai-workspace-select"
        value={props.current}
        onChange={e => props.onChange(e.target.value)}
      >
        {props.workspaces.map(w => (
          <option key={w.id} value={w.name}>
            {w.name}
          </option>
        ))}
      </select>
      {current && current.description && <div className="pai-muted">{current.description}</div>}
      {current?.my_roles?.length ? <div className="pai-muted">my roles: {current.my_roles.join(', ')}</div> : null}
    </div>
  );
}

export function MembersSection(props: { workspace: string; refreshKey: number }): JSX.Element {
  const loaded = useEndpoint<Member[]>(ws(props.workspace, 'members'), props.refreshKey);
  const members = loaded.data || [];
  return (
    <Section title="Members" id="members" count={loaded.data ? members.length : undefined}>
      <LoadState loaded={loaded} isEmpty={members.length === 0} empty="No members." />
      {members.length > 0 && (
        <ul className="pai-list pai-members">
          {members.map(member => (
            <li className="pai-row pai-row-line" key={member.username} data-member={member.username}>
              <span className="pai-name">{member.username}</span>
              <span className="pai-roles">
                {member.roles.map(role => (
                  <span className="pai-role" key={role}>
                    {role}
                  </span>
                ))}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

export function CreateWorkspaceForm(props: {
  onCreated: (workspace: Workspace) => void;
  onCancel: () => void;
}): JSX.Element {
  const [name, setName] = React.useState('');
  const [description, setDescription] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    post<Workspace>('workspaces', { name: name.trim(), description })
      .then(created => props.onCreated(created))
      .catch(reason => setError(reason instanceof ApiError ? reason.message : String(reason)))
      .finally(() => setBusy(false));
  };

  return (
    <form className="pai-form pai-create-workspace" onSubmit={submit} aria-label="Create workspace">
      <label>
        Name
        <input
          name="workspace-name"
          value={name}
          onChange={e => setName(e.target.value)}
          placeholder="team_vision"
          title="3 to 23 characters: a letter first, then letters, digits or _"
          required
        />
      </label>
      <label>
        Description
        <input name="workspace-description" value={description} onChange={e => setDescription(e.target.value)} />
      </label>
      {error && <ErrorLine message={error} />}
      <div className="pai-row-line">
        <button className="pai-button pai-primary" type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create workspace'}
        </button>
        <button className="pai-link-button" type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
