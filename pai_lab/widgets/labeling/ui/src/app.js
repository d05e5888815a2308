// @ts-check
// The labeler's shell: the package's items and each item's editing state, moving between items,
// and what goes to the kernel or the server. Drawing lives in chrome.js (head, foot, dialogs) and
// content.js (the item's media), keys in keys.js, each question's editing in tools/.
import { answerFromModels, modelsFromAnswer } from './answers.js';
import * as chrome from './chrome.js';
import { PALETTE, TEXT_LIMIT } from './constants.js';
import * as content from './content.js';
import { clone, h, patch, uid } from './dom.js';
import { assignHotkeys } from './hotkeys.js';
import * as keys from './keys.js';
import { MediaCache } from './media.js';
import { makeTool } from './tools/index.js';
import { ChoiceTool } from './tools/choice.js';
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
    // Choice questions read the current item's answer from the app: their panels stay from one
    // item to the next, so a move repaints only the choices that change.
    const keep =
      this.tools &&
      this.tools.length &&
      this.toolsFor === this.questions &&
      this.sideInfo &&
      this.tools.every(t => t instanceof ChoiceTool && t.panel.parentNode === this.side)
        ? this.tools
        : null;
    this.mode = null;
    this.activeQ = 0;
    this.tools = [];
    this.contentViews = {};
    this.content.replaceChildren();
    this.renderHead();
    this.renderFoot();
    const item = this.item;
    if (!keep || !item) {
      this.side.replaceChildren();
    }
    if (!item) {
      this.showDone();
      return;
    }
    this.media.trim(this.items, this.index, this.fetchAhead());
    const st = this.state;
    for (const c of this.contents) {
      this.contentViews[c.key] = this.renderContent(c, item);
    }
    const status = h(
      'div',
      { class: 'pl-itemstate' + (st.skip ? ' skipped' : ''), 'data-role': 'item-state' },
      st.skip
        ? `Invalid: ${st.skip}`
        : st.error
          ? `Not saved: ${st.error}`
          : st.pending
            ? 'Saving…'
            : st.saved
              ? 'Saved'
              : this.stage !== 'label'
                ? 'Unchanged: passes with the earlier answer'
                : 'Not answered yet'
    );
    const info = [status];
    if (this.stage !== 'label' && item.answer && !st.dirty) {
      info.push(
        h(
          'div',
          { class: 'pl-suggest' },
          `Showing the ${this.stage === 'accept' && item.check ? 'checked' : 'labeled'} answer; change it to modify.`
        )
      );
    }
    this.relationTool = null;
    if (keep) {
      patch(this.sideInfo, info);
      for (const tool of keep) {
        tool.item = item;
        tool.refresh();
      }
      this.tools = keep;
    } else {
      this.sideInfo = h('div', { style: 'display:contents' }, ...info);
      this.side.append(this.sideInfo);
      this.questions.forEach((q, qi) => {
        const tool = makeTool(this, q, qi, item);
        this.tools.push(tool);
        this.side.append(tool.panel);
      });
      this.toolsFor = this.questions;
    }
    // text nobody marks spans in is shown as it is (classification, custom templates)
    for (const view of Object.values(this.contentViews)) {
      if (view.type !== 'text' || view.spanTool) {
        continue;
      }
      const shown = view.text.length > TEXT_LIMIT ? view.text.slice(0, TEXT_LIMIT).join('') + ' …' : view.text.join('');
      view.wrap.append(h('div', { class: 'pl-text', 'data-role': 'text' }, shown));
      if (view.problem) {
        view.wrap.prepend(
          h(
            'div',
            { class: 'pl-problem', 'data-role': 'problem', style: 'margin:0' },
            h('b', {}, 'Shown in part'),
            view.problem,
            '. Press ',
            h('span', { class: 'pl-kbd' }, 'X'),
            ' to skip it as invalid if it cannot be labeled.'
          )
        );
      }
      if (view.problem) {
        this.itemProblem = view.problem;
      }
    }
    this.setActive(0);
    this.preload();
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

  // Sends the current item's answer; returns false (and says why) when it is not complete.
  commit(force = false) {
    const item = this.item,
      st = this.state;
    if (!item) {
      return true;
    }
    if (!st.dirty && (st.saved || st.pending) && !force) {
      return true;
    }
    if (!st.dirty && this.stage !== 'label') {
      return true;
    } // passing unchanged keeps the earlier answer
    const built = answerFromModels(this.questions, st.models, this.contextFor());
    if (built.missing) {
      if (!st.dirty && !force) {
        return true;
      }
      this.flash(`Answer “${built.missing.title}” first${built.why ? `: ${built.why}` : ''}`);
      return false;
    }
    this.sendAnswer(item.seq, { answer: built.answer });
    return true;
  }

  sendAnswer(seq, body) {
    const st = this.states.get(seq);
    const client_id = uid();
    st.pending += 1;
    st.dirty = false;
    st.error = null;
    if (body.skip) {
      st.skip = body.skip;
    } else {
      st.skip = null;
    }
    this.transport.answer({ seq, client_id, stage: this.stage, ...body });
    this.renderHead();
  }

  // The server stored an answer (ok) or refused it (error), told by the kernel or the server.
  stored(seq, msg, ok, error, progress) {
    const st = this.states.get(seq);
    if (!st) {
      return;
    }
    st.pending = Math.max(0, st.pending - 1);
    if (ok) {
      st.saved = true;
      if (progress) {
        this.counters(progress);
      }
    } else {
      st.error = error;
      st.saved = false;
      if (msg.skip) {
        st.skip = null;
      }
    }
    this.renderHead();
    if (this.item && this.item.seq === seq) {
      const el = this.side.querySelector('[data-role=item-state]');
      if (el) {
        el.textContent = st.error ? `Not saved: ${st.error}` : st.skip ? `Invalid: ${st.skip}` : 'Saved';
      }
    }
  }

  // The task's counters come with each acknowledgement (the server owns them); the kernel hears
  // of them once the labeler pauses.
  counters(progress) {
    this.model.set('progress', progress);
    clearTimeout(this.progressTimer);
    this.progressTimer = setTimeout(() => this.model.save_changes(), 1500);
  }

  retry(now = false) {
    this.transport.retry(now);
    if (now) {
      for (const [seq, st] of this.states) {
        if (st.error && !st.pending) {
          const i = this.items.findIndex(it => it.seq === seq);
          if (i >= 0) {
            this.go(i);
            this.flash(`Not saved: ${st.error}`);
            return;
          }
        }
      }
    }
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
    if (!this.item || this.stage !== 'label') {
      return;
    }
    const reason = this.itemProblem || '';
    this.prompt(
      'Skip this item as invalid',
      'Why is it invalid?',
      reason || 'unusable item',
      text => {
        if (!text.trim()) {
          this.flash('Give a reason to skip the item');
          return;
        }
        this.sendAnswer(this.item.seq, { skip: text.trim() });
        this.index += 1;
        this.show();
      },
      'skip-reason'
    );
  }

  askReject() {
    if (this.stage === 'label') {
      return;
    }
    this.commit();
    this.prompt(
      'Reject this package',
      'What should the labeler fix?',
      '',
      text => {
        if (!text.trim()) {
          this.flash('A rejection needs a comment');
          return;
        }
        this.verdict('reject', text.trim());
      },
      'reject-comment'
    );
  }

  verdict(verdict, comment = '') {
    if (this.stage === 'label') {
      return;
    }
    if (this.item && !this.commit()) {
      return;
    }
    this.transport.afterAnswers('review', { verdict, comment });
  }

  submitPackage() {
    if (this.item && !this.commit()) {
      return;
    }
    this.transport.afterAnswers('submit');
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
