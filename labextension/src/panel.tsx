/** The pai_lab sidebar: who is connected, the current workspace and one section per area. */
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ApiError, Me, Workspace, get } from './api';
import { ErrorLine } from './common';
import { paiIcon } from './icon';
import { DatasetsSection } from './sections/datasets';
import { JobsSection } from './sections/jobs';
import { LabelingSection } from './sections/labeling';
import { ServicesSection } from './sections/services';
import { CreateWorkspaceForm, MembersSection, WorkspaceSwitcher } from './workspace';

const STORAGE_KEY = 'pai-lab:workspace';

type Connection =
  | { kind: 'loading' }
  | { kind: 'ready'; me: Me; workspaces: Workspace[] }
  | { kind: 'missing' }
  | { kind: 'failed'; message: string };

function rememberedWorkspace(): string | null {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function remember(name: string): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, name);
  } catch {
    // private windows may refuse storage; the choice then lasts for this page only
  }
}

export function Sidebar(props: { insertCode: (code: string) => Promise<string | null> }): JSX.Element {
  const [connection, setConnection] = React.useState<Connection>({ kind: 'loading' });
  const [current, setCurrent] = React.useState<string | null>(rememberedWorkspace());
  const [refreshKey, setRefreshKey] = React.useState(0);
  const [creating, setCreating] = React.useState(false);

  const load = React.useCallback(async (select?: string) => {
    try {
      const me = await get<Me>('me');
      const workspaces = await get<Workspace[]>('workspaces');
      setConnection({ kind: 'ready', me, workspaces });
      setCurrent(previous => {
        const wanted = select || previous;
        if (wanted && workspaces.some(w => w.name === wanted)) {
          return wanted;
        }
        const fallback = workspaces.find(w => w.name === me.default_workspace) || workspaces[0];
        return fallback ? fallback.name : null;
      });
    } catch (error) {
      if (error instanceof ApiError && error.unavailable) {
        setConnection({ kind: 'missing' });
      } else {
        setConnection({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
      }
    }
  }, []);

  React.useEffect(() => {
    void load();
  }, [load]);

  React.useEffect(() => {
    if (current) {
      remember(current);
    }
  }, [current]);

  const refresh = () => {
    setRefreshKey(k => k + 1);
    void load();
  };

  const header = (
    <div className="pai-header">
      <paiIcon.react tag="span" className="pai-header-icon" />
      <span className="pai-title">pai_lab</span>
      {connection.kind === 'ready' && <span className="pai-muted pai-user">{connection.me.username}</span>}
      <button className="pai-icon-button pai-refresh" title="Refresh" aria-label="Refresh" onClick={refresh}>
        ⟳
      </button>
    </div>
  );

  if (connection.kind === 'loading') {
    return (
      <div className="pai-sidebar">
        {header}
        <div className="pai-muted pai-pad">Connecting to pai_lab…</div>
      </div>
    );
  }
  if (connection.kind === 'missing') {
    return (
      <div className="pai-sidebar">
        {header}
        <div className="pai-problem" role="alert">
          <strong>The pai_lab server extension is not running in this Jupyter server.</strong>
          <p>
            Install the package in the environment that runs JupyterLab (<code>pip install pai_lab</code>), check that{' '}
            <code>jupyter server extension list</code> shows <code>pai_lab enabled</code>, then restart JupyterLab.
          </p>
        </div>
      </div>
    );
  }
  if (connection.kind === 'failed') {
    return (
      <div className="pai-sidebar">
        {header}
        <div className="pai-problem" role="alert">
          <strong>pai_lab did not answer.</strong>
          <ErrorLine message={connection.message} />
          <p>Look at the JupyterLab server's log for the cause, then press refresh.</p>
        </div>
      </div>
    );
  }

  return (
    <div className="pai-sidebar">
      {header}
      <div className="pai-workspace-bar">
        <WorkspaceSwitcher
          workspaces={connection.workspaces}
          current={current || ''}
          onChange={name => {
            setCreating(false);
            setCurrent(name);
          }}
        />
        <button className="pai-link-button pai-new-workspace" onClick={() => setCreating(!creating)}>
          {creating ? 'Close' : 'New workspace'}
        </button>
      </div>
      {creating && (
        <CreateWorkspaceForm
          onCancel={() => setCreating(false)}
          onCreated={created => {
            setCreating(false);
            void load(created.name);
          }}
        />
      )}
      {current ? (
        <div className="pai-sections" data-workspace={current}>
          <MembersSection workspace={current} refreshKey={refreshKey} />
          <DatasetsSection workspace={current} refreshKey={refreshKey} insertCode={props.insertCode} />
          <LabelingSection workspace={current} refreshKey={refreshKey} insertCode={props.insertCode} />
          <JobsSection workspace={current} refreshKey={refreshKey} insertCode={props.insertCode} />
          <ServicesSection workspace={current} refreshKey={refreshKey} insertCode={props.insertCode} />
        </div>
      ) : (
        <div className="pai-muted pai-pad">You are not a member of any workspace yet: create one.</div>
      )}
    </div>
  );
}

export class SidebarWidget extends ReactWidget {
  constructor(private readonly insertCode: (code: string) => Promise<string | null>) {
    super();
    this.id = 'pai-lab-sidebar';
    this.title.icon = paiIcon;
    this.title.caption = 'pai_lab';
    this.addClass('pai-lab-sidebar');
  }

  protected render(): JSX.Element {
    return <Sidebar insertCode={this.insertCode} />;
  }
}
