// @ts-check
import { h, patch } from '../dom.js';
import { Tool } from './tool.js';
export class ChoiceTool extends Tool {
  constructor(...a) {
    super(...a);
    this.refresh();
  }
  refresh() {
    const multi = this.q.type === 'multi';
    const m = this.model,
      sg = this.suggestion;
    const on = name => (multi ? m.values.includes(name) : m.value === name);
    const sugg = name => sg && (multi ? (sg.values || []).includes(name) : sg.value === name);
    // patched, not rebuilt: a choice's listener is the same whichever item is shown
    patch(
      this.body,
      [
        ...this.labels().map(l =>
          h(
            'div',
            {
              class: `pl-choice${on(l.name) ? ' on' : ''}${sugg(l.name) ? ' sugg' : ''}`,
              'data-label': l.name,
              onclick: () => this.pick(l.name)
            },
            h('span', { class: 'sw', style: `background:${l.color}` }),
            h('span', { class: 'nm' }, l.name),
            l.hotkey ? h('span', { class: 'pl-kbd' }, l.hotkey) : null
          )
        ),
        sg && (sg.value || (sg.values || []).length)
          ? h(
              'div',
              { class: 'pl-suggest' },
              'Suggestion: ',
              h('b', {}, multi ? sg.values.join(', ') : sg.value),
              ' — ',
              h('span', { class: 'pl-kbd' }, 'A'),
              ' to accept'
            )
          : null,
        multi
          ? h('div', { class: 'pl-suggest' }, 'Several labels: pick, then ', h('span', { class: 'pl-kbd' }, 'Enter'))
          : null
      ].filter(Boolean)
    );
  }
  pick(name) {
    if (this.q.type === 'multi') {
      this.app.change(ms => {
        const vs = ms[this.qi].values;
        const i = vs.indexOf(name);
        if (i >= 0) {
          vs.splice(i, 1);
        } else {
          vs.push(name);
        }
      });
      this.refresh();
      return;
    }
    this.app.change(ms => {
      ms[this.qi].value = name;
    });
    if (this.app.tools.length === 1) {
      this.app.answerAndNext();
    } else {
      this.refresh();
      this.app.setActive(this.qi + 1);
    }
  }
  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) {
      return false;
    }
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.pick(l.name);
      return true;
    }
    return false;
  }
}
