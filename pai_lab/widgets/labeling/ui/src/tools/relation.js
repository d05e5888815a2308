// @ts-check
// Relations between the entities a SpanTool marked (NER with relations).
import { h } from '../dom.js';
import { Tool } from './tool.js';
import { SpanTool } from './span.js';

export class RelationTool extends Tool {
  constructor(...a) {
    super(...a);
    this.linking = null;
    this.selected = -1;
    this.app.relationTool = this;
    this.refresh();
  }
  get spanTool() {
    return this.app.tools.find(t => t instanceof SpanTool);
  }
  start() {
    const st = this.spanTool;
    if (!st || st.selected < 0) {
      this.app.flash('Select an entity first (click it), then press L and click the other one');
      return;
    }
    this.linking = st.selected;
    this.app.flash('Click the entity to link to (Esc cancels)');
  }
  linkTo(idx) {
    const st = this.spanTool;
    const a = st.model.spans[this.linking],
      b = st.model.spans[idx];
    this.linking = null;
    if (!a || !b || a === b) {
      return;
    }
    const label = this.current || (this.labels()[0] && this.labels()[0].name);
    const pos = sp => {
      const el = st.textEl.querySelector(`[data-span="${st.model.spans.indexOf(sp)}"]`);
      return el ? [Math.round(el.offsetLeft), Math.round(el.offsetTop)] : [0, 0];
    };
    this.app.change(ms => {
      ms[this.qi].rels.push({ from: [a.start, a.end, ...pos(a)], to: [b.start, b.end, ...pos(b)], label });
    });
    this.selected = this.model.rels.length - 1;
    this.refresh();
  }
  globalKey(e) {
    if (e.key === 'l' || e.key === 'L') {
      this.start();
      return true;
    }
    if (e.key === 'Escape' && this.linking !== null) {
      this.linking = null;
      return true;
    }
    return false;
  }
  key(e) {
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.current = l.name;
      if (this.selected >= 0) {
        const r = this.model.rels[this.selected];
        this.app.change(() => {
          r.label = l.name;
        });
      }
      this.refresh();
      return true;
    }
    if ((e.key === 'Delete' || e.key === 'Backspace') && this.selected >= 0) {
      this.app.change(ms => {
        ms[this.qi].rels.splice(this.selected, 1);
      });
      this.selected = -1;
      this.refresh();
      return true;
    }
    return this.globalKey(e);
  }
  refresh() {
    const st = this.spanTool;
    const text = st && st.view ? st.view.text : [];
    const t = r => text.slice(r[0], r[1] + 1).join('');
    this.body.replaceChildren(
      ...this.labels().map(l =>
        h(
          'div',
          {
            class: `pl-choice${this.current === l.name ? ' current' : ''}`,
            onclick: () => {
              this.current = l.name;
              this.refresh();
            }
          },
          h('span', { class: 'sw', style: `background:${l.color}` }),
          h('span', { class: 'nm' }, l.name),
          l.hotkey ? h('span', { class: 'pl-kbd' }, l.hotkey) : null
        )
      ),
      ...this.model.rels.map((r, i) =>
        h(
          'div',
          {
            class: `pl-list-row${i === this.selected ? ' on' : ''}`,
            'data-role': 'relation-row',
            onclick: () => {
              this.selected = i;
              this.refresh();
            }
          },
          h('span', { class: 'nm' }, `${t(r.from)} → ${t(r.to)}`),
          h('span', { class: 'pl-badge' }, r.label)
        )
      ),
      h(
        'div',
        { class: 'pl-suggest' },
        'Click an entity, press ',
        h('span', { class: 'pl-kbd' }, 'L'),
        ', click the other.'
      )
    );
  }
}
