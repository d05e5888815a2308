// @ts-check
// What every question tool has: a panel with its title, the question's model in the current item.
import { TITLES } from '../constants.js';
import { h } from '../dom.js';

export class Tool {
  constructor(app, q, qi, item) {
    this.app = app;
    this.q = q;
    this.qi = qi;
    this.item = item;
    this.panel = h('div', { class: 'pl-q', 'data-question': q.type });
    this.panel.addEventListener('mousedown', () => app.setActive(qi));
    this.panel.append(h('h4', { title: q.title }, TITLES[q.title] || q.title));
    this.body = h('div');
    this.panel.append(this.body);
  }
  get model() {
    return this.app.state.models[this.qi];
  }
  get suggestion() {
    const sg = this.app.state.suggestion;
    return sg ? sg[this.qi] : null;
  }
  labels() {
    return this.app.labelsOf(this.q);
  }
  color(name) {
    const l = this.labels().find(x => x.name === name);
    return l ? l.color : '#666';
  }
  key() {
    return false;
  }
  refresh() {}
}

// a label added to or taken from a multi-label value
export function toggle(cur, name) {
  const arr = Array.isArray(cur) ? cur : cur ? [cur] : [];
  return arr.includes(name) ? arr.filter(x => x !== name) : [...arr, name];
}
