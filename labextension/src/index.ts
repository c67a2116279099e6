import { IRouter, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, MainAreaWidget, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { post, requestAPI } from './api';
import { INotebookView, watchWidgetOutputs } from './fallback';
import { experimentFor, IRunRow, runFromUrl, statusText } from './logic';
import { RunView } from './runview';
import { AmlSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M12 2 3 7v10l9 5 9-5V7l-9-5zm0 2.3 6.7 3.7L12 11.7 5.3 8 12 4.3zM5 9.7l6 3.3v6.6l-6-3.3V9.7zm8 9.9V13l6-3.3v6.6l-6 3.3z"/>
</svg>`;
const amlIcon = new LabIcon({ name: 'aml-magics:icon', svgstr: ICON_SVG });

const CMD = {
  open: 'aml-magics:open-sidebar',
  submit: 'aml-magics:submit-notebook',
  refresh: 'aml-magics:refresh',
  openRun: 'aml-magics:open-run',
  openRunFromUrl: 'aml-magics:open-run-from-url'
};

/** `/lab?aml-run=RUN_ID` (what a v1 notebook's `run.get_portal_url()` gives) opens that run's view. */
const RUN_ROUTE = /[?&]aml-run=([^&#]+)/;

/** The body of the "Submit notebook as run" dialog: experiment and compute, with defaults. */
class SubmitForm extends Widget {
  constructor(experiment: string, computes: string[]) {
    const node = document.createElement('div');
    node.className = 'amlx-submit-form';
    node.innerHTML =
      '<label>Experiment<input class="jp-mod-styled amlx-experiment" /></label>' +
      '<label>Compute<select class="jp-mod-styled amlx-compute"></select></label>';
    super({ node });
    (node.querySelector('.amlx-experiment') as HTMLInputElement).value = experiment;
    const select = node.querySelector('.amlx-compute') as HTMLSelectElement;
    for (const c of computes.length ? computes : ['local']) {
      const o = document.createElement('option');
      o.value = o.textContent = c;
      select.appendChild(o);
    }
  }

  getValue(): { experiment: string; compute: string } {
    return {
      experiment: (this.node.querySelector('.amlx-experiment') as HTMLInputElement).value.trim(),
      compute: (this.node.querySelector('.amlx-compute') as HTMLSelectElement).value
    };
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'aml-magics-labextension:plugin',
  description: 'The aml-magics workspace: runs, models and endpoints; submit a notebook as a run.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, IStatusBar, IRouter],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    statusBar: IStatusBar | null,
    router: IRouter | null
  ) => {
    const sidebar = new AmlSidebar();
    sidebar.title.icon = amlIcon;
    app.shell.add(sidebar, 'left', { rank: 850 });

    const views = new Map<string, MainAreaWidget<RunView>>();
    const openRun = (runId: string) => {
      let view = views.get(runId);
      if (!view || view.isDisposed) {
        const content = new RunView(runId);
        content.onOpenRun = openRun;
        view = new MainAreaWidget({ content });
        view.id = `amlx-run-view-${runId}`;
        view.title.icon = amlIcon;
        view.title.label = runId;
        content.title.changed.connect(() => view && (view.title.label = content.title.label));
        views.set(runId, view);
        app.shell.add(view, 'main');
      }
      app.shell.activateById(view.id);
    };
    sidebar.onOpenRun = openRun;

    app.commands.addCommand(CMD.open, {
      label: 'AML: Show the workspace sidebar',
      icon: amlIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CMD.refresh, {
      label: 'AML: Refresh the workspace sidebar',
      execute: () => sidebar.poll.refresh()
    });
    app.commands.addCommand(CMD.openRun, {
      label: args => `AML: Open run ${args.runId ?? ''}`,
      execute: args => openRun(String(args.runId))
    });
    if (router) {
      app.commands.addCommand(CMD.openRunFromUrl, {
        execute: args => {
          const id = runFromUrl(String((args as { search?: string }).search ?? ''));
          if (id) {
            void app.restored.then(() => openRun(id));
          }
        }
      });
      router.register({ command: CMD.openRunFromUrl, pattern: RUN_ROUTE });
    }
    app.commands.addCommand(CMD.submit, {
      label: 'Submit notebook as run',
      caption: 'Save this notebook and run it headless as an Azure ML run (aml-magics)',
      icon: amlIcon,
      isEnabled: () => !!tracker?.currentWidget,
      execute: async () => {
        const panel = tracker?.currentWidget as NotebookPanel | null;
        if (!panel) {
          return;
        }
        await panel.context.save();
        const path = panel.context.path;
        let computes: string[] = [];
        try {
          computes = (await requestAPI<{ computes: { name: string }[] }>('computes')).computes.map(c => c.name);
        } catch (error) {
          void showErrorMessage('Azure ML', String((error as Error).message));
          return;
        }
        const form = new SubmitForm(experimentFor(path), computes);
        const result = await showDialog({
          title: 'Submit notebook as run',
          body: form,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })]
        });
        if (!result.button.accept) {
          return;
        }
        const { experiment, compute } = form.getValue();
        try {
          const run = await post<IRunRow>('runs', { path, experiment: experiment || experimentFor(path), compute });
          app.shell.activateById(sidebar.id);
          sidebar.highlight(run.id);
          Notification.success(`Submitted ${path} as run ${run.name} (experiment ${run.experiment}).`, {
            autoClose: 8000,
            actions: [{ label: 'Open run', callback: () => openRun(run.id) }]
          });
        } catch (error) {
          void showErrorMessage('Could not submit the notebook', String((error as Error).message));
        }
      }
    });

    if (palette) {
      for (const command of [CMD.open, CMD.submit, CMD.refresh]) {
        palette.addItem({ command, category: 'Azure ML (aml-magics)' });
      }
    }
    if (tracker) {
      // a reopened notebook shows each dashboard's static summary instead of "model not found"
      tracker.forEach(panel => watchWidgetOutputs(panel as unknown as INotebookView));
      tracker.widgetAdded.connect((_, panel) => {
        watchWidgetOutputs(panel as unknown as INotebookView);
        const buttonWidget = new ToolbarButton({
          icon: amlIcon,
          label: 'Submit as run',
          tooltip: 'Submit notebook as run (Azure ML)',
          className: 'amlx-submit-button',
          onClick: () => void app.commands.execute(CMD.submit)
        });
        panel.toolbar.insertItem(10, 'amlSubmit', buttonWidget);
      });
    }
    if (statusBar) {
      const item = new Widget();
      item.addClass('amlx-statusbar');
      item.node.textContent = statusText('', 0);
      item.node.title = 'Show the Azure ML workspace';
      item.node.setAttribute('role', 'button');
      item.node.tabIndex = 0;
      const open = () => void app.commands.execute(CMD.open);
      item.node.addEventListener('click', open);
      item.node.addEventListener('keydown', e => (e.key === 'Enter' || e.key === ' ') && open());
      statusBar.registerStatusItem('aml-magics:status', { item, align: 'left', rank: 100 });
      sidebar.onWorkspace = ws => {
        item.node.textContent = ws ? statusText(ws.backend, ws.running) : 'AML: server extension not answering';
      };
    }
    // the status bar needs numbers even while the sidebar is hidden: one small request every 3 s while the page
    // is visible (the sidebar, when shown, updates it on its own polls)
    const tick = async () => {
      if (!sidebar.isVisible) {
        try {
          sidebar.onWorkspace(await requestAPI('workspace'));
        } catch {
          sidebar.onWorkspace(null);
        }
      }
      window.setTimeout(tick, document.hidden ? 60000 : 3000);
    };
    void app.restored.then(() => tick());
  }
};

export default plugin;
