// @ts-check
// The labeler's shell: the package's items and each item's editing state, moving between items,
// and what goes to the kernel or the server. Drawing lives in chrome.js (head, foot, dialogs),
// display.js (an item shown with its tools) and content.js (the item's media), what leaves the page
// in sending.js, keys in keys.js, each question's editing in tools/.
import { modelsFromAnswer } from './answers.js';
import * as chrome from './chrome.js';
import { PALETTE } from './constants.js';
import * as content from './content.js';
import * as display from './display.js';
import { clone, h } from './dom.js';
import { assignHotkeys } from './hotkeys.js';
import * as keys from './keys.js';
import { MediaCache } from './media.js';
import * as sending from './sending.js';
import { Transport } from './transport.js';

export class Labeler {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.index = 0;
    this.states = new Map(); // seq -> {models, saved, pending, error, skip, dirty}
    this.undo = [];
    this.activeQ = 0;
    /** @type {HTMLElement | null} an open dialog, and what Enter does in it */
    this.overlay = null;
    /** @type {(() => void) | null} */
    this.overlayOk = null;
    this.flashTimer = undefined;
    /** @type {Map<any, any[]>} each question's own labels, with their keys */
    this._qlabels = new Map();
    this.media = new MediaCache(this);
    this.viewBox = null;
    // set as items are shown (display.js) and answers go out (sending.js); named here for the type check
    /** @type {any[]} one tool per question of the item shown */
    this.tools = undefined;
    /** @type {any[]} the questions the tools were made for */
    this.toolsFor = undefined;
    /** @type {HTMLElement} the side panel's item state line and notes */
    this.sideInfo = undefined;
    /** @type {Record<string, any>} the item's content views by content key */
    this.contentViews = undefined;
    /** @type {any} */
    this.mode = undefined;
    /** @type {any} the relations question's tool, which the spans tool links through */
    this.relationTool = undefined;
    /** @type {ReturnType<typeof setTimeout>} */
    this.progressTimer = undefined;
    this.transport = new Transport(model, {
      stored: (seq, msg, ok, error, progress) => this.stored(seq, msg, ok, error, progress),
      failed: error => this.flash(error),
      package: () => this.model.get('package')
    });
    this.build();
    this.load();
    this.onChange = () => this.load();
    model.on('change:items', this.onChange);
    model.on('change:package', () => this.renderHead());
    model.on('change:notice', () => this.renderNotice());
    model.on('change:progress', () => this.renderHead());
    this.retryTimer = setInterval(() => this.transport.retry(), 4000);
    // a page shown again (a reload) asks the kernel for the package as it is now
    this.transport.invoke('hello').then(
      ([reply]) => {
        if (!reply.ok) {
          this.flash(reply.error);
        }
      },
      () => {}
    );
    this.directBase(); // learn early whether media and answers can go straight to the server
  }

  destroy() {
    clearInterval(this.retryTimer);
    this.transport.close();
    this.model.off('change:items', this.onChange);
    this.media.clear();
  }

  directBase() {
    return this.transport.directBase(this.task.id);
  }

  viewSize() {
    return content.viewSize(this);
  }

  // ------------------------------------------------------------------ state from the kernel

  load() {
    this.task = this.model.get('task') || {};
    this.stage = this.model.get('stage') || 'label';
    this.items = this.model.get('items') || [];
    this.questions = (this.task.spec && this.task.spec.questions) || [];
    this.contents = (this.task.spec && this.task.spec.contents) || [];
    this.labels = assignHotkeys(
      (this.task.labels || []).map((l, i) => ({
        name: l.name,
        color: l.color || PALETTE[i % PALETTE.length],
        hotkey: l.hotkey || null
      }))
    );
    this.states = new Map();
    this.undo = [];
    for (const item of this.items) {
      this.states.set(item.seq, this.initialState(item));
    }
    this.media.clear();
    this.index = this.firstOpen();
    this.renderHead();
    this.renderNotice();
    this.show();
  }

  // The server says what an item opens with in this stage and whether it is done there (the
  // stage table, pai_lab/labeling/flow.py); the page only keeps track of what happens after.
  initialState(item) {
    const suggestion = item.suggestion ? modelsFromAnswer(this.questions, item.suggestion) : null;
    // an unanswered item opens with its suggestion pre-selected (choices on, boxes drawn): A, or
    // moving on, stores it as the answer; any edit starts from it
    const preselect = suggestion && this.stage === 'label' && !item.done;
    return {
      models: preselect ? clone(suggestion) : modelsFromAnswer(this.questions, item.answer),
      suggestion,
      saved: !!item.done,
      skip: item.skipped,
      error: null,
      pending: 0,
      dirty: false,
      reviewed: false
    };
  }

  firstOpen() {
    const i = this.items.findIndex(it => !this.states.get(it.seq).saved);
    return i < 0 ? this.items.length : i;
  }

  get item() {
    return this.items[this.index];
  }
  get state() {
    return this.item ? this.states.get(this.item.seq) : null;
  }

  // ------------------------------------------------------------------ skeleton

  build() {
    this.el.innerHTML = '';
    this.root = h('div', { class: 'pl-root', tabindex: '0', 'data-lm-suppress-shortcuts': 'true' });
    this.head = h('div', { class: 'pl-head' });
    this.notice = h('div', { class: 'pl-notice' });
    this.content = h('div', { class: 'pl-content' });
    this.side = h('div', { class: 'pl-side' });
    this.foot = h('div', { class: 'pl-foot' });
    this.root.append(this.head, this.notice, h('div', { class: 'pl-body' }, this.content, this.side), this.foot);
    this.el.append(this.root);
    this.root.addEventListener('keydown', e => this.key(e));
    this.root.addEventListener('mousedown', e => {
      if (!e.target.closest('input, textarea, button, .pl-text')) {
        setTimeout(() => this.focus(), 0);
      }
    });
    setTimeout(() => this.focus(), 0);
  }

  focus() {
    if (!this.overlay) {
      this.root.focus({ preventScroll: true });
    }
  }

  renderHead() {
    return chrome.renderHead(this);
  }

  saveState() {
    return chrome.saveState(this);
  }

  renderNotice() {
    return chrome.renderNotice(this);
  }

  // ------------------------------------------------------------------ item display

  show() {
    return display.show(this);
  }

  renderContent(c, item) {
    return content.renderContent(this, c, item);
  }

  problem(container, title, detail) {
    return content.problem(this, container, title, detail);
  }

  mountImage(view) {
    return content.mountImage(this, view);
  }

  applyZoom(view) {
    return content.applyZoom(this, view);
  }

  preload() {
    return content.preload(this);
  }

  fetchAhead() {
    return content.fetchAhead(this);
  }

  showDone() {
    return chrome.showDone(this);
  }

  renderFoot() {
    return chrome.renderFoot(this);
  }

  setActive(qi) {
    if (!this.tools.length) {
      return;
    }
    this.activeQ = (qi + this.tools.length) % this.tools.length;
    this.tools.forEach((t, i) => t.panel.classList.toggle('active', i === this.activeQ && this.tools.length > 1));
  }

  // ------------------------------------------------------------------ editing and answers

  // Called by tools before a change: remembers the item's models for undo.
  change(fn) {
    const st = this.state;
    this.undo.push({ seq: this.item.seq, models: clone(st.models), dirty: st.dirty });
    if (this.undo.length > 200) {
      this.undo.shift();
    }
    fn(st.models);
    st.dirty = true;
    this.renderFoot();
  }

  doUndo() {
    const last = this.undo.pop();
    if (!last) {
      return;
    }
    const i = this.items.findIndex(it => it.seq === last.seq);
    const st = this.states.get(last.seq);
    st.models = last.models;
    st.dirty = true;
    if (i !== this.index) {
      this.index = i;
      this.show();
    } else {
      // the tools' own state (a selection, a half-drawn polygon, what is drawn) follows the answer back
      for (const t of this.tools) {
        if (t.restored) {
          t.restored();
        }
      }
      this.refreshTools();
    }
    this.renderFoot();
  }

  refreshTools() {
    for (const t of this.tools) {
      t.refresh();
    }
  }

  contextFor() {
    return {
      sizeOf: key => this.contentViews[key] && this.contentViews[key].size,
      durationOf: key => this.contentViews[key] && this.contentViews[key].duration
    };
  }

  commit(force = false) {
    return sending.commit(this, force);
  }

  sendAnswer(seq, body) {
    return sending.sendAnswer(this, seq, body);
  }

  stored(seq, msg, ok, error, progress) {
    return sending.stored(this, seq, msg, ok, error, progress);
  }

  counters(progress) {
    return sending.counters(this, progress);
  }

  retry(now = false) {
    return sending.retry(this, now);
  }

  flash(text) {
    return chrome.flash(this, text);
  }

  go(i) {
    if (i < 0 || i > this.items.length) {
      return;
    }
    if (this.overlay) {
      this.closeOverlay();
    }
    if (i !== this.index && this.item && !this.commit()) {
      return;
    }
    this.index = i;
    this.itemProblem = null;
    this.show();
  }

  next() {
    // a reviewer moving on without changes has looked at the item
    if (this.state && this.stage !== 'label') {
      this.state.reviewed = true;
    }
    if (!this.commit(true)) {
      return;
    }
    this.go(this.index + 1);
  }

  // one keystroke for a single-choice item: answer, send, show the next (already decoded) item
  answerAndNext() {
    this.commit(true);
    this.index += 1;
    this.itemProblem = null;
    this.show();
  }

  acceptSuggestion(andNext) {
    const st = this.state;
    if (!st || !st.suggestion) {
      return;
    }
    this.change(models => {
      models.splice(0, models.length, ...clone(st.suggestion));
    });
    if (andNext) {
      this.next();
    } else {
      this.refreshTools();
    }
  }

  askSkip() {
    return sending.askSkip(this);
  }

  askReject() {
    return sending.askReject(this);
  }

  verdict(verdict, comment = '') {
    return sending.verdict(this, verdict, comment);
  }

  submitPackage() {
    return sending.submitPackage(this);
  }

  // ------------------------------------------------------------------ overlays

  prompt(title, label, value, done, role) {
    return chrome.prompt(this, title, label, value, done, role);
  }

  help() {
    return chrome.help(this);
  }

  openOverlay(dialog) {
    return chrome.openOverlay(this, dialog);
  }

  closeOverlay() {
    return chrome.closeOverlay(this);
  }

  // ------------------------------------------------------------------ keys

  labelForKey(e, q) {
    return keys.labelForKey(this, e, q);
  }

  labelsOf(q) {
    return keys.labelsOf(this, q);
  }

  key(e) {
    return keys.key(this, e);
  }

  handleKey(e) {
    return keys.handleKey(this, e);
  }

  usesArrows() {
    return keys.usesArrows(this);
  }
}
