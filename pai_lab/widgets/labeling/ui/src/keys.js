// @ts-check
// Keys: the labeler's own shortcuts; the active question's tool sees a key first.
import { PALETTE } from './constants.js';
import { assignHotkeys } from './hotkeys.js';

/** @typedef {import("./app.js").Labeler} Labeler */

/** @param {Labeler} app */
export function labelForKey(app, e, q) {
  const labels = app.labelsOf(q);
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  return labels.find(l => l.hotkey && l.hotkey.toLowerCase() === k) || null;
}

/** @param {Labeler} app */
export function labelsOf(app, q) {
  if (q && Array.isArray(q.labels)) {
    if (!app._qlabels) {
      app._qlabels = new Map();
    }
    if (!app._qlabels.has(q)) {
      app._qlabels.set(
        q,
        assignHotkeys(
          q.labels.map((name, i) => {
            const known = app.labels.find(l => l.name === name);
            return { name, color: known ? known.color : PALETTE[i % PALETTE.length], hotkey: null };
          })
        )
      );
    }
    return app._qlabels.get(q);
  }
  return app.labels;
}

/** @param {Labeler} app */
export function key(app, e) {
  if (app.overlay) {
    if (e.key === 'Enter' && app.overlayOk && !e.target.closest('input, textarea, button')) {
      e.preventDefault();
      app.overlayOk();
    } else if (e.key === 'Escape' || e.key === '?' || (e.key === 'h' && !e.target.closest('input'))) {
      e.preventDefault();
      app.closeOverlay();
    }
    return;
  }
  const typing = e.target.closest('input, textarea');
  if (typing) {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.target.blur();
      app.focus();
    } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      app.next();
    } else if (e.key === 'Enter' && e.target.tagName === 'INPUT') {
      e.preventDefault();
      e.target.blur();
      app.focus();
    }
    e.stopPropagation();
    return;
  }
  e.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the labeler
  const handled = app.handleKey(e);
  if (handled) {
    e.preventDefault();
  }
}

/** @param {Labeler} app */
export function handleKey(app, e) {
  const k = e.key;
  if (k === '?' || (k === 'h' && !e.ctrlKey)) {
    app.help();
    return true;
  }
  if (!app.item) {
    if (k === 'Enter' && app.stage === 'label' && app.model.get('package')) {
      app.submitPackage();
      return true;
    }
    if (k === ',') {
      app.go(app.index - 1);
      return true;
    }
    if (app.stage !== 'label' && (k === 'p' || k === 'P')) {
      app.verdict('pass');
      return true;
    }
    if (app.stage !== 'label' && (k === 'r' || k === 'R')) {
      app.askReject();
      return true;
    }
    return false;
  }
  // the active question's tool first: label keys, drawing keys, arrows
  const tool = app.tools[app.activeQ];
  if (tool && tool.key(e)) {
    return true;
  }
  for (const t of app.tools) {
    if (t !== tool && t.globalKey && t.globalKey(e)) {
      return true;
    }
  }
  if ((k === 'z' || k === 'Z') && !e.shiftKey) {
    app.doUndo();
    return true;
  }
  if (k === 'Tab' && app.tools.length > 1) {
    app.setActive(app.activeQ + (e.shiftKey ? -1 : 1));
    return true;
  }
  if (k === 'Enter' || k === ' ') {
    app.next();
    return true;
  }
  if (k === ',') {
    app.go(app.index - 1);
    return true;
  }
  if (k === '.') {
    app.next();
    return true;
  }
  if (k === 'ArrowLeft' && !app.usesArrows()) {
    app.go(app.index - 1);
    return true;
  }
  if (k === 'ArrowRight' && !app.usesArrows()) {
    app.next();
    return true;
  }
  if ((k === 'x' || k === 'X') && app.stage === 'label') {
    app.askSkip();
    return true;
  }
  if (k === 'a' && app.state.suggestion) {
    app.acceptSuggestion(true);
    return true;
  }
  if (k === 'A' && app.state.suggestion) {
    app.acceptSuggestion(false);
    return true;
  }
  if (app.stage !== 'label' && (k === 'p' || k === 'P')) {
    app.verdict('pass');
    return true;
  }
  if (app.stage !== 'label' && (k === 'R' || (k === 'r' && !app.questions.some(q => q.type === 'boxes')))) {
    app.askReject();
    return true;
  }
  return false;
}

/** @param {Labeler} app */
export function usesArrows(app) {
  return app.questions.some(q => ['boxes', 'spans', 'segments'].includes(q.type));
}
