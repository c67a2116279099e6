/**
 * A dashboard in a saved notebook, reopened with a new kernel (or none): ipywidgets can only say "Error displaying
 * widget: model not found" (or "Loading widget..." with no kernel). Every aml-magics dashboard output also carries
 * its static summary as text/html, so that is shown in place of the message until the live widget renders, and
 * again whenever it cannot. The widget's own renderer is left alone (ipywidgets finds and manages its renderers);
 * this only watches what they show. Outputs of other libraries get the same courtesy when they carry an HTML
 * fallback, and are left exactly as they are when they do not.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

export const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
const FALLBACK_CLASS = 'amlx-widget-fallback';

/** Whether a widget output shows no view: only ipywidgets' "Loading widget..." or "Error displaying widget". */
export function showsNoView(node: HTMLElement): boolean {
  if (node.querySelector('.lm-Widget, .p-Widget, .widget-container, .widget-box, canvas, table, svg')) {
    return false;
  }
  const text = (node.textContent || '').trim();
  return text.startsWith('Loading widget') || text.startsWith('Error displaying widget');
}

/** The minimal view of a notebook this needs (JupyterLab's NotebookPanel has it). */
export interface INotebookView {
  node: HTMLElement;
  isDisposed: boolean;
  content: {
    rendermime: IRenderMimeRegistry;
    widgets: ReadonlyArray<Widget & { model: { type: string; outputs?: { length: number; get(i: number): IRenderMime.IMimeModel & { data: any } } }; outputArea?: { widgets: ReadonlyArray<Widget> } }>;
  };
}

class Fallbacks {
  private readonly view: INotebookView;
  private readonly shown = new Map<HTMLElement, { html: string; widget: IRenderMime.IRenderer }>();
  private frame = 0;
  private observer: MutationObserver;

  constructor(view: INotebookView) {
    this.view = view;
    this.observer = new MutationObserver(() => this.schedule());
    this.observer.observe(view.node, { childList: true, characterData: true, subtree: true });
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) {
      this.frame = window.requestAnimationFrame(() => {
        this.frame = 0;
        this.sync();
      });
    }
  }

  private sync(): void {
    if (this.view.isDisposed) {
      this.observer.disconnect();
      return;
    }
    for (const cell of this.view.content.widgets) {
      const outputs = cell.model.outputs;
      const area = cell.outputArea;
      if (cell.model.type !== 'code' || !outputs || !area) {
        continue;
      }
      area.widgets.forEach((child, i) => {
        if (i >= outputs.length) {
          return;
        }
        const data = outputs.get(i).data || {};
        const html = data['text/html'];
        if (!data[WIDGET_MIME] || typeof html !== 'string') {
          return;
        }
        const renderer = child.node.querySelector('.jp-OutputArea-output') as HTMLElement | null;
        if (renderer) {
          this.apply(renderer, outputs.get(i), html);
        }
      });
    }
  }

  private apply(renderer: HTMLElement, model: IRenderMime.IMimeModel, html: string): void {
    const noView = showsNoView(renderer);
    let entry = this.shown.get(renderer);
    if (noView && (!entry || entry.html !== html)) {
      entry?.widget.dispose();
      const widget = this.view.content.rendermime.createRenderer('text/html');
      widget.addClass(FALLBACK_CLASS);
      void widget.renderModel(model);  // sanitized unless the notebook is trusted, as any HTML output
      renderer.parentElement?.insertBefore(widget.node, renderer.nextSibling);
      entry = { html, widget };
      this.shown.set(renderer, entry);
    }
    if (entry) {
      entry.widget.node.style.display = noView ? '' : 'none';
      // the message itself is replaced by the summary; the renderer keeps running underneath
      renderer.style.display = noView ? 'none' : '';
    }
    for (const [node, other] of this.shown) {
      if (!node.isConnected) {
        other.widget.dispose();
        this.shown.delete(node);
      }
    }
  }
}

/** Start showing static summaries for the widget outputs of a notebook view (once per view). */
export function watchWidgetOutputs(view: INotebookView): void {
  const marked = view as INotebookView & { __amlxFallbacks?: Fallbacks };
  if (!marked.__amlxFallbacks) {
    marked.__amlxFallbacks = new Fallbacks(view);
  }
}
