/** The pai_lab JupyterLab extension: a left-area sidebar over the pai_lab control plane. */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { SidebarWidget } from './panel';

const PLUGIN_ID = 'pai-lab:sidebar';

/** Put code in a new cell below the active one of the current notebook; resolve to a message when it cannot. */
function codeInserter(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null
): (code: string) => Promise<string | null> {
  return async (code: string) => {
    const panel = tracker?.currentWidget;
    if (!panel) {
      Clipboard.copyToSystem(code);
      return 'Open a notebook first; the code was copied to the clipboard.';
    }
    await panel.context.ready;
    app.shell.activateById(panel.id);
    const notebook = panel.content;
    const active = notebook.activeCell;
    const reuse = active && active.model.type === 'code' && active.model.sharedModel.getSource().trim() === '';
    if (!reuse) {
      NotebookActions.insertBelow(notebook);
    }
    const cell = notebook.activeCell;
    if (!cell) {
      return 'Could not add a cell to this notebook.';
    }
    cell.model.sharedModel.setSource(code);
    return null;
  };
}

/**
 * Needs no ILabShell: `app.shell.add(..., 'left')` works in JupyterLab and in Notebook 7's pages alike,
 * so the panel shows in either.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The pai_lab sidebar: workspaces, members, datasets, labeling, jobs and services.',
  autoStart: true,
  optional: [ILayoutRestorer, INotebookTracker, ISettingRegistry],
  activate: async (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    tracker: INotebookTracker | null,
    registry: ISettingRegistry | null
  ) => {
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
      } catch (reason) {
        // the panel still works, with the default intervals and a choice that lasts for this page
        console.warn('pai_lab: the sidebar settings did not load', reason);
      }
    }
    const sidebar = new SidebarWidget(codeInserter(app, tracker), settings);
    app.shell.add(sidebar, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }
    app.commands.addCommand('pai-lab:open-sidebar', {
      label: 'Show the pai_lab sidebar',
      execute: () => app.shell.activateById(sidebar.id)
    });
  }
};

export default plugin;
