/** The pai_lab sidebar: who is connected, the current workspace and one section per area. */
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ApiError, Me, Workspace, get } from './api';
import { ErrorLine } from './common';
import { paiIcon } from './icon';
import { DatasetsSection } from './sections/datasets';
import { JobsSection } from './sections/jobs';
import { LabelingSection } from './sections/labeling';
import { PipelinesSection } from './sections/pipelines';
import { ServicesSection } from './sections/services';
import { SidebarSettings, chooseWorkspace, readSettings } from './settings';
import { CreateWorkspaceForm, MembersSection, WorkspaceSwitcher } from './workspace';

type Connection =
  | { kind: 'loading' }
  | { kind: 'ready'; me: Me; workspaces: Workspace[] }
  | { kind: 'missing' }
  | { kind: 'failed'; message: string };

/** The registry's settings as the sidebar reads them, following edits made in the Settings Editor. */
function useSettings(registry: ISettingRegistry.ISettings | null): SidebarSettings {
  const [settings, setSettings] = React.useState(() => readSettings(registry?.composite));
  React.useEffect(() => {
    if (!registry) {
      return;
    }
    const update = () => setSettings(readSettings(registry.composite));
    registry.changed.connect(update);
    return () => {
      registry.changed.disconnect(update);
    };
  }, [registry]);
  return settings;
}

export function Sidebar(props: {
  insertCode: (code: string) => Promise<string | null>;
  settings: ISettingRegistry.ISettings | null;
}): JSX.Element {
  const settings = useSettings(props.settings);
  const [connection, setConnection] = React.useState<Connection>({ kind: 'loading' });
  const [current, setCurrent] = React.useState<string | null>(settings.workspace || null);
  const [refreshKey, setRefreshKey] = React.useState(0);
  const [creating, setCreating] = React.useState(false);

  const load = React.useCallback(async (select?: string) => {
    try {
      const me = await get<Me>('me');
      const workspaces = await get<Workspace[]>('workspaces');
      setConnection({ kind: 'ready', me, workspaces });
      const names = workspaces.map(w => w.name);
      setCurrent(previous => chooseWorkspace(names, select || previous, me.default_workspace));
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

  // The workspace this panel last wrote to the settings, until the settings echo it back: the echo of an
  // earlier pick that lands after a later one (a slow save) must not switch the panel back.
  const written = React.useRef<string | undefined>(undefined);

  // A workspace picked in the Settings Editor switches the panel too, when the user is a member of it.
  React.useEffect(() => {
    const wanted = settings.workspace;
    if (written.current !== undefined) {
      if (wanted !== written.current) {
        return; // an echo of an earlier pick of this panel's
      }
      written.current = undefined;
    }
    if (wanted && connection.kind === 'ready' && connection.workspaces.some(w => w.name === wanted)) {
      setCurrent(wanted);
    }
    // only an edit of the setting switches, not a reload of the list (which keeps the current choice)
  }, [settings.workspace]);

  // A workspace the user picks (or creates) is kept in their settings; one chosen by default is not.
  const remember = (name: string) => {
    const registry = props.settings;
    // only a change is written: an equal write would still be saved and echo back as a change
    const saved = written.current ?? registry?.get('workspace').composite;
    if (registry && saved !== name) {
      written.current = name;
      registry.set('workspace', name).catch(reason => {
        written.current = undefined;
        console.warn('pai_lab: could not save the workspace', reason);
      });
    }
  };

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
            remember(name);
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
            remember(created.name);
            void load(created.name);
          }}
        />
      )}
      {current ? (
        <div className="pai-sections" data-workspace={current}>
          <MembersSection workspace={current} refreshKey={refreshKey} />
          <DatasetsSection
            workspace={current}
            refreshKey={refreshKey}
            insertCode={props.insertCode}
            poll={settings.poll}
          />
          <LabelingSection
            workspace={current}
            refreshKey={refreshKey}
            insertCode={props.insertCode}
            poll={settings.poll}
          />
          <JobsSection workspace={current} refreshKey={refreshKey} insertCode={props.insertCode} poll={settings.poll} />
          <ServicesSection
            workspace={current}
            refreshKey={refreshKey}
            insertCode={props.insertCode}
            poll={settings.poll}
          />
          <PipelinesSection
            workspace={current}
            refreshKey={refreshKey}
            insertCode={props.insertCode}
            poll={settings.poll}
            username={connection.me.username}
            roles={connection.workspaces.find(w => w.name === current)?.my_roles || []}
          />
        </div>
      ) : (
        <div className="pai-muted pai-pad">You are not a member of any workspace yet: create one.</div>
      )}
    </div>
  );
}

export class SidebarWidget extends ReactWidget {
  constructor(
    private readonly insertCode: (code: string) => Promise<string | null>,
    private readonly settings: ISettingRegistry.ISettings | null
  ) {
    super();
    this.id = 'pai-lab-sidebar';
    this.title.icon = paiIcon;
    this.title.caption = 'pai_lab';
    this.addClass('pai-lab-sidebar');
  }

  protected render(): JSX.Element {
    return <Sidebar insertCode={this.insertCode} settings={this.settings} />;
  }
}
