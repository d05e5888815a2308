// @ts-check
import { clamp, cps, h } from '../dom.js';
import { Tool, toggle } from './tool.js';
// ------------------------------------------------------------------ spans (NER) and relations

export class SpanTool extends Tool {
  constructor(...a) {
    super(...a);
    this.selected = -1;
    this.kb = null; // keyboard selection {anchor, caret}
    this.linking = null;
    this.list = h('div');
    this.labelList = h('div', { style: 'margin-bottom:6px' });
    this.body.append(this.labelList, this.list);
    this.mount();
    this.refresh();
  }
  get view() {
    return this.app.contentViews[this.q.bind || 'source'];
  }

  mount() {
    const v = this.view;
    if (!v || v.type !== 'text') {
      return;
    }
    if (v.problem) {
      this.app.problem(v.wrap, 'Cannot mark spans in this item', v.problem);
      v.failed = true;
      return;
    }
    this.textEl = h('div', { class: 'pl-text', 'data-role': 'text' });
    v.wrap.append(this.textEl);
    v.spanTool = this;
    this.textEl.addEventListener('mouseup', () => setTimeout(() => this.fromSelection(), 0));
    this.textEl.addEventListener('click', e => {
      const seg = e.target.closest('.pl-seg.ent');
      if (!seg || !window.getSelection().isCollapsed) {
        return;
      }
      const idx = +seg.getAttribute('data-span');
      if (this.app.relationTool && this.app.relationTool.linking !== null) {
        this.app.relationTool.linkTo(idx);
        return;
      }
      this.selected = idx;
      this.renderText();
      this.refresh();
    });
  }

  // code-point offsets of the page selection inside the text
  fromSelection() {
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || !this.textEl) {
      return;
    }
    const r = sel.getRangeAt(0);
    if (!this.textEl.contains(r.startContainer) || !this.textEl.contains(r.endContainer)) {
      return;
    }
    const off = (node, offset) => {
      const seg = (node.nodeType === 3 ? node.parentElement : node).closest('.pl-seg');
      if (!seg) {
        return null;
      }
      const base = +seg.getAttribute('data-a');
      if (node.nodeType !== 3) {
        return base + (offset > 0 ? cps(seg.textContent).length : 0);
      }
      return base + cps(node.textContent.slice(0, offset)).length;
    };
    let a = off(r.startContainer, r.startOffset),
      b = off(r.endContainer, r.endOffset);
    if (a === null || b === null) {
      return;
    }
    const text = this.view.text;
    while (a < b && /\s/.test(text[a])) {
      a += 1; // trim spaces picked up by a sloppy drag
    }
    while (b > a && /\s/.test(text[b - 1])) {
      b -= 1;
    }
    if (b <= a) {
      return;
    }
    this.kb = { anchor: a, caret: b };
    sel.removeAllRanges();
    this.renderText();
    this.app.setActive(this.qi);
    this.app.focus();
    if (this.armed) {
      this.mark(this.armed);
    }
  }

  range() {
    if (!this.kb || this.kb.anchor === this.kb.caret) {
      return null;
    }
    return [Math.min(this.kb.anchor, this.kb.caret), Math.max(this.kb.anchor, this.kb.caret) - 1];
  }

  mark(label) {
    const rg = this.range();
    if (!rg) {
      if (this.selected >= 0) {
        // relabel the selected span
        const sp = this.model.spans[this.selected];
        this.app.change(() => {
          sp.label = this.q.multi ? toggle(sp.label, label) : label;
        });
        this.renderText();
        this.refresh();
      } else {
        this.armed = label;
        this.refresh();
      }
      return;
    }
    const [start, end] = rg;
    const spans = this.model.spans;
    const same = spans.findIndex(x => x.start === start && x.end === end);
    // iTAG's rule: entities may nest but not cross
    const crosses = spans.find(
      x => (x.start < start && x.end >= start && x.end < end) || (x.start > start && x.start <= end && x.end > end)
    );
    if (crosses && same < 0) {
      this.app.flash(
        `This span crosses “${this.view.text.slice(crosses.start, crosses.end + 1).join('')}”; entities may nest but not cross`
      );
      return;
    }
    if (same >= 0) {
      this.app.change(() => {
        spans[same].label = this.q.multi ? toggle(spans[same].label, label) : label;
      });
    } else {
      this.app.change(ms => {
        ms[this.qi].spans.push({ start, end, label: this.q.multi ? [label] : label });
      });
    }
    this.model.spans.sort((x, y) => x.start - y.start || y.end - x.end);
    this.selected = this.model.spans.findIndex(x => x.start === start && x.end === end);
    this.kb = { anchor: end + 1, caret: end + 1 };
    this.renderText();
    this.refresh();
  }

  renderText() {
    if (!this.textEl) {
      return;
    }
    const text = this.view.text;
    const spans = this.model.spans;
    const sugg = !spans.length && this.suggestion ? this.suggestion.spans || [] : [];
    const bounds = new Set([0, text.length]);
    for (const sp of [...spans, ...sugg]) {
      bounds.add(sp.start);
      bounds.add(sp.end + 1);
    }
    const rg = this.range();
    if (rg) {
      bounds.add(rg[0]);
      bounds.add(rg[1] + 1);
    }
    if (this.kb) {
      bounds.add(this.kb.caret);
    }
    const cuts = [...bounds].filter(x => x >= 0 && x <= text.length).sort((x, y) => x - y);
    const frag = document.createDocumentFragment();
    for (let i = 0; i + 1 < cuts.length; i++) {
      const a = cuts[i],
        b = cuts[i + 1];
      const cover = spans.map((sp, idx) => ({ sp, idx })).filter(({ sp }) => sp.start <= a && sp.end >= b - 1);
      const inner = cover.sort((x, y) => x.sp.end - x.sp.start - (y.sp.end - y.sp.start))[0];
      const el = h('span', { class: 'pl-seg', 'data-a': a }, text.slice(a, b).join(''));
      if (inner) {
        const lab = Array.isArray(inner.sp.label) ? inner.sp.label[0] : inner.sp.label;
        const color = this.color(lab);
        el.classList.add('ent');
        el.setAttribute('data-span', inner.idx);
        el.style.background = color + '33';
        el.style.boxShadow = cover.length > 1 ? `inset 0 -3px 0 ${this.color(cover[cover.length - 1].sp.label)}` : '';
        if (inner.idx === this.selected) {
          el.classList.add('sel-ent');
        }
        for (const c of cover) {
          if (c.sp.end === b - 1) {
            el.classList.add('ent-end');
            el.setAttribute('data-label', Array.isArray(c.sp.label) ? c.sp.label.join('+') : c.sp.label);
            el.style.setProperty('--pl-tag', this.color(Array.isArray(c.sp.label) ? c.sp.label[0] : c.sp.label));
          }
        }
      }
      if (sugg.some(sp => sp.start <= a && sp.end >= b - 1)) {
        el.classList.add('sugg');
      }
      if (rg && a >= rg[0] && b - 1 <= rg[1]) {
        el.classList.add('kbsel');
      }
      if (this.kb && a === this.kb.caret && !rg) {
        el.classList.add('caret');
      }
      frag.append(el);
    }
    this.textEl.replaceChildren(frag);
  }

  key(e) {
    const k = e.key;
    if (!this.textEl || (e.ctrlKey && !k.startsWith('Arrow'))) {
      return false;
    }
    const text = this.view.text;
    const l = this.app.labelForKey(e, this.q);
    if (l && !e.shiftKey) {
      this.mark(l.name);
      return true;
    }
    if (k === 'ArrowLeft' || k === 'ArrowRight') {
      const kb = this.kb || { anchor: 0, caret: 0 };
      let c = kb.caret;
      const dir = k === 'ArrowLeft' ? -1 : 1;
      if (e.ctrlKey || e.altKey) {
        // by word
        c += dir;
        while (c > 0 && c < text.length && !(/\s/.test(text[c - 1]) !== /\s/.test(text[c]))) {
          c += dir;
        }
      } else {
        c += dir;
      }
      c = clamp(c, 0, text.length);
      this.kb = { anchor: e.shiftKey ? kb.anchor : c, caret: c };
      this.selected = -1;
      this.renderText();
      return true;
    }
    if (k === 'Escape') {
      this.kb = null;
      this.selected = -1;
      this.armed = null;
      this.renderText();
      this.refresh();
      return true;
    }
    if ((k === 'Delete' || k === 'Backspace') && this.selected >= 0) {
      const sp = this.model.spans[this.selected];
      this.app.change(ms => {
        ms[this.qi].spans.splice(this.selected, 1);
        const rq = this.app.relationTool;
        if (rq) {
          ms[rq.qi].rels = ms[rq.qi].rels.filter(
            r => !(r.from[0] === sp.start && r.from[1] === sp.end) && !(r.to[0] === sp.start && r.to[1] === sp.end)
          );
        }
      });
      this.selected = -1;
      this.renderText();
      this.refresh();
      this.app.relationTool && this.app.relationTool.refresh();
      return true;
    }
    if (k === 'Tab' && this.app.tools.length === 1 && this.model.spans.length) {
      this.selected = (this.selected + (e.shiftKey ? -1 : 1) + this.model.spans.length) % this.model.spans.length;
      this.renderText();
      this.refresh();
      return true;
    }
    return false;
  }

  refresh() {
    this.renderText();
    this.labelList.replaceChildren(
      ...this.labels().map(l =>
        h(
          'div',
          {
            class: `pl-choice${this.armed === l.name ? ' current' : ''}`,
            'data-label': l.name,
            onclick: () => this.mark(l.name)
          },
          h('span', { class: 'sw', style: `background:${l.color}` }),
          h('span', { class: 'nm' }, l.name),
          l.hotkey ? h('span', { class: 'pl-kbd' }, l.hotkey) : null
        )
      )
    );
    const text = this.view ? this.view.text : [];
    const rows = this.model.spans.map((sp, i) =>
      h(
        'div',
        {
          class: `pl-list-row${i === this.selected ? ' on' : ''}`,
          'data-role': 'span-row',
          onclick: () => {
            this.selected = i;
            this.refresh();
          }
        },
        h('span', { class: 'nm' }, `${text.slice(sp.start, sp.end + 1).join('')}`),
        h('span', { class: 'pl-badge' }, Array.isArray(sp.label) ? sp.label.join('+') : sp.label)
      )
    );
    if (!rows.length) {
      rows.push(
        h('div', { class: 'pl-suggest' }, 'Select text with the mouse (or Shift+arrows), then press a label key.')
      );
    }
    const sg = this.suggestion;
    if (sg && (sg.spans || []).length) {
      rows.push(
        h(
          'div',
          { class: 'pl-suggest' },
          `Suggestion: ${sg.spans.length} span(s) (dashed) — `,
          h('span', { class: 'pl-kbd' }, 'A'),
          ' to accept'
        )
      );
    }
    this.list.replaceChildren(...rows);
  }
}
