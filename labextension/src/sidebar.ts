import { Clipboard, showErrorMessage } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { post, requestAPI } from './api';
import {
  fingerprint,
  formatDuration,
  formatStart,
  formatValue,
  groupRuns,
  IRunRow,
  isActive,
  nextInterval,
  shownText,
  statusClass,
  useStates
} from './logic';

interface IModelRow {
  name: string;
  version: number;
  framework: string | null;
  run_id: string | null;
  tags: { [k: string]: string };
}

interface IDeploymentRow {
  name: string;
  state: string;
  scoring_uri: string;
  models: string[];
  error: string | null;
}

interface IWorkspace {
  name: string;
  backend: string;
  running: number;
  runs: number;
  states?: { active?: string[] };
}

const PAGE = 50;

/** The left sidebar: Runs (live), Models (Deploy), Endpoints (copy URI, Test, Delete). */
export class AmlSidebar extends Widget {
  readonly poll: Poll;
  workspace: IWorkspace | null = null;
  onWorkspace: (ws: IWorkspace | null) => void = () => undefined;
  onOpenRun: (runId: string) => void = () => undefined;
  private experiment = '';
  private runs: IRunRow[] = [];
  private total = 0;
  private more = false; // the server stopped counting: at least `total` runs
  private highlighted = '';
  private lastPrint = '';
  private testInputs = new Map<string, string>();
  private interval = 1000;
  private runsBox: HTMLElement;
  private modelsBox: HTMLElement;
  private endpointsBox: HTMLElement;
  private filter: HTMLSelectElement;
  private message: HTMLElement;

  constructor() {
    super();
    this.id = 'amlx-sidebar';
    this.addClass('amlx-sidebar');
    this.title.caption = 'Azure ML workspace (aml-magics)';
    this.message = el('div', 'amlx-message');
    this.filter = document.createElement('select');
    this.filter.className = 'amlx-filter jp-mod-styled';
    this.filter.title = 'Only runs of this experiment';
    this.filter.onchange = () => {
      this.experiment = this.filter.value;
      void this.poll.refresh();
    };
    this.runsBox = el('div', 'amlx-runs');
    this.modelsBox = el('div', 'amlx-models');
    this.endpointsBox = el('div', 'amlx-endpoints');
    const runsHead = section('Runs');
    runsHead.appendChild(this.filter);
    this.node.append(
      this.message,
      runsHead,
      this.runsBox,
      section('Models'),
      this.modelsBox,
      section('Endpoints'),
      this.endpointsBox
    );
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: 1000, backoff: false, max: 30000 },
      standby: 'when-hidden',
      name: 'aml-magics:sidebar'
    });
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  highlight(runId: string): void {
    this.highlighted = runId;
    void this.poll.refresh();
  }

  async refresh(): Promise<void> {
    try {
      const query = `runs?limit=${PAGE}` + (this.experiment ? `&experiment=${encodeURIComponent(this.experiment)}` : '');
      const [ws, runs, exps, models, deps] = await Promise.all([
        requestAPI<IWorkspace>('workspace'),
        requestAPI<{ runs: IRunRow[]; total: number; more?: boolean }>(query),
        requestAPI<{ experiments: { name: string; run_count: number }[] }>('experiments'),
        requestAPI<{ models: IModelRow[] }>('models?limit=100'),
        requestAPI<{ deployments: IDeploymentRow[] }>('deployments')
      ]);
      this.message.textContent = '';
      this.workspace = ws;
      useStates(ws.states);
      this.onWorkspace(ws);
      this.runs = runs.runs;
      this.total = runs.total;
      this.more = !!runs.more;
      this.renderFilter(exps.experiments.map(e => e.name));
      const print =
        fingerprint(this.runs) +
        JSON.stringify(models.models.map(m => [m.name, m.version])) +
        JSON.stringify(deps.deployments.map(d => [d.name, d.state]));
      const changed = print !== this.lastPrint;
      this.lastPrint = print;
      this.renderRuns();
      if (changed) {
        this.renderModels(models.models);
        this.renderEndpoints(deps.deployments);
      }
      const active = this.runs.some(r => isActive(r.status)) || deps.deployments.some(d => d.state === 'Transitioning');
      // idle, it still looks every 10 s: a run submitted from a cell shows up soon
      this.interval = nextInterval(this.interval, changed, active, 1000, 5000, 10000);
    } catch (error) {
      this.workspace = null;
      this.onWorkspace(null);
      this.message.textContent = String((error as Error).message || error);
      this.interval = nextInterval(this.interval, false, false, 1000, 5000, 10000);
    }
    this.poll.frequency = { interval: this.interval, backoff: false, max: 30000 };
  }

  private renderFilter(names: string[]): void {
    const wanted = ['', ...names];
    const have = Array.from(this.filter.options).map(o => o.value);
    if (have.join('\n') === wanted.join('\n')) {
      return;
    }
    this.filter.innerHTML = '';
    for (const n of wanted) {
      const o = document.createElement('option');
      o.value = n;
      o.textContent = n ? shownText(n) : 'all experiments';
      this.filter.appendChild(o);
    }
    this.filter.value = this.experiment;
  }

  private renderRuns(): void {
    this.runsBox.innerHTML = '';
    if (this.runs.length === 0) {
      this.runsBox.appendChild(
        el('div', 'amlx-empty', this.experiment ? `No runs in ${this.experiment} yet.` : 'No runs yet: %%aml run a cell, or Submit notebook as run.')
      );
      return;
    }
    for (const group of groupRuns(this.runs)) {
      const head = el('div', 'amlx-group', group.experiment);
      head.dataset.experiment = group.experiment;
      head.title = `experiment ${shownText(group.experiment)}: show only its runs`;
      head.onclick = () => {
        this.filter.value = group.experiment;
        this.experiment = group.experiment;
        void this.poll.refresh();
      };
      this.runsBox.appendChild(head);
      for (const r of group.runs) {
        const row = el('div', 'amlx-row amlx-run-row');
        row.dataset.runId = r.id;
        row.dataset.status = r.status;
        if (r.id === this.highlighted) {
          row.classList.add('amlx-highlight');
        }
        const icon = el('span', `amlx-dot ${statusClass(r.status)}`);
        icon.title = r.status;
        const name = el('span', 'amlx-name', r.label);
        name.title = shownText(`${r.name}\n${r.id}\n${r.experiment} · ${r.status}`);
        const metric = Object.keys(r.metrics)[0];
        const when = [formatStart(r.started ?? r.created), r.duration !== null ? formatDuration(r.duration) : '']
          .filter(Boolean)
          .join(' · ');
        const info = el('span', 'amlx-info', when + (metric ? ` · ${metric} ${formatValue(r.metrics[metric])}` : ''));
        info.title = r.status;
        row.append(icon, name, info);
        row.onclick = () => this.onOpenRun(r.id);
        this.runsBox.appendChild(row);
      }
    }
    if (this.total > this.runs.length) {
      this.runsBox.appendChild(el('div', 'amlx-more', `${this.runs.length} of ${this.more ? `${this.total.toLocaleString()}+` : this.total} runs (newest first)`));
    }
  }

  private renderModels(models: IModelRow[]): void {
    this.modelsBox.innerHTML = '';
    if (models.length === 0) {
      this.modelsBox.appendChild(el('div', 'amlx-empty', 'No models: %aml register RUN --name NAME'));
      return;
    }
    for (const m of models) {
      const row = el('div', 'amlx-row amlx-model-row');
      row.dataset.model = `${m.name}:${m.version}`;
      const tags = Object.keys(m.tags)
        .map(k => `${k}=${m.tags[k]}`)
        .join(' ');
      row.append(
        el('span', 'amlx-name', `${m.name}:${m.version}`),
        el('span', 'amlx-info', [m.framework ?? '', tags].filter(Boolean).join(' · '))
      );
      const deploy = button('Deploy', 'amlx-deploy', async () => {
        deploy.disabled = true;
        deploy.textContent = 'Deploying…';
        try {
          await post('deployments', { model: `${m.name}:${m.version}` });
        } catch (error) {
          void showErrorMessage('Deploy failed', String((error as Error).message));
        }
        deploy.disabled = false;
        deploy.textContent = 'Deploy';
        this.lastPrint = '';
        void this.poll.refresh();
      });
      row.appendChild(deploy);
      this.modelsBox.appendChild(row);
    }
  }

  private renderEndpoints(deps: IDeploymentRow[]): void {
    this.endpointsBox.innerHTML = '';
    if (deps.length === 0) {
      this.endpointsBox.appendChild(el('div', 'amlx-empty', 'No endpoints: Deploy a model above'));
      return;
    }
    for (const d of deps) {
      const row = el('div', 'amlx-row amlx-endpoint-row');
      row.dataset.endpoint = d.name;
      row.dataset.state = d.state;
      const state = el('span', `amlx-dot ${d.state === 'Healthy' ? 'amlx-status-completed' : d.state === 'Failed' ? 'amlx-status-failed' : 'amlx-status-active'}`);
      state.title = d.state;
      const name = el('span', 'amlx-name', d.name);
      name.title = shownText(
        `${d.state}\n${d.scoring_uri}\nmodels: ${d.models.join(', ')}` + (d.error ? `\n${d.error}` : '')
      );
      const info = el('span', 'amlx-info amlx-state', d.state);
      const copy = button('Copy URI', 'amlx-copy', () => Clipboard.copyToSystem(d.scoring_uri));
      // Test: an inline form under the row, the answer (or the error) visible beside what was sent
      const form = el('div', 'amlx-test-form');
      form.style.display = 'none';
      const input = document.createElement('textarea');
      input.className = 'jp-mod-styled amlx-test-input';
      input.rows = 3;
      input.value = this.testInputs.get(d.name) ?? '{"data": [[0]]}';
      input.oninput = () => this.testInputs.set(d.name, input.value);
      const result = el('pre', 'amlx-test-result');
      const send = button('Send', 'amlx-test-send', async () => {
        let body: unknown;
        try {
          body = JSON.parse(input.value);
        } catch (error) {
          result.dataset.outcome = 'error';
          result.textContent = `not valid JSON: ${(error as Error).message}`;
          return;
        }
        send.disabled = true;
        result.dataset.outcome = 'pending';
        result.textContent = 'sending…';
        try {
          const answer = await post<{ answer: unknown; ms: number }>(`deployments/${encodeURIComponent(d.name)}/score`, {
            input: body
          });
          result.dataset.outcome = 'ok';
          result.textContent = `200 in ${answer.ms} ms\n${JSON.stringify(answer.answer, null, 1).slice(0, 2000)}`;
        } catch (error) {
          result.dataset.outcome = 'error';
          result.textContent = String((error as Error).message);
        }
        send.disabled = false;
      });
      form.append(input, send, result);
      const test = button('Test', 'amlx-test', () => {
        form.style.display = form.style.display === 'none' ? '' : 'none';
        if (form.style.display === '') {
          input.focus();
        }
      });
      const del = button('Delete', 'amlx-delete', async () => {
        if (!window.confirm(`Delete the endpoint ${d.name}?`)) {
          return;
        }
        try {
          await requestAPI(`deployments/${encodeURIComponent(d.name)}`, { method: 'DELETE' });
        } catch (error) {
          void showErrorMessage('Delete failed', String((error as Error).message));
        }
        this.lastPrint = '';
        void this.poll.refresh();
      });
      row.append(state, name, info, copy, test, del);
      this.endpointsBox.append(row, form);
    }
  }
}

function el(tag: string, cls: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) {
    e.textContent = shownText(text);
  }
  return e;
}

function section(title: string): HTMLElement {
  const h = el('div', 'amlx-section');
  h.appendChild(el('span', 'amlx-section-title', title));
  return h;
}

function button(label: string, cls: string, onClick: () => unknown): HTMLButtonElement {
  const b = document.createElement('button');
  b.className = `jp-Button jp-mod-styled amlx-button ${cls}`;
  b.textContent = label;
  b.onclick = event => {
    event.stopPropagation();
    void onClick();
  };
  return b;
}
