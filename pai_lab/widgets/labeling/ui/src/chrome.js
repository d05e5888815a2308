// @ts-check
// The labeler's chrome: the head (position, progress, saving), the notice, the foot's buttons,
// the end of a package, and dialogs (prompt, help).
import { h, patch } from './dom.js';

/** @typedef {import("./app.js").Labeler} Labeler */

/** @param {Labeler} app */
export function renderHead(app) {
  const pkg = app.model.get('package') || null;
  const prog = app.model.get('progress') || {};
  const n = app.items.length;
  const done = app.items.filter(it => {
    const st = app.states.get(it.seq);
    return st && (st.saved || st.reviewed);
  }).length;
  const shown = Math.min(app.index + 1, n);
  const stage = app.stage;
  const saveState = app.saveState();
  patch(app.head, [
    h('span', { class: 'pl-title', title: app.task.name }, app.task.name || 'labeling'),
    h('span', { class: `pl-badge ${stage}` }, { label: 'labeler', check: 'checker', accept: 'acceptor' }[stage]),
    h(
      'div',
      { class: 'pl-progress' },
      h('span', { class: 'pl-count', 'data-role': 'position' }, n ? `${shown}/${n}` : '0/0'),
      h(
        'div',
        { class: 'pl-bar', title: `${done} of ${n} answered in app package` },
        h('div', { style: `width:${n ? (100 * done) / n : 0}%` })
      ),
      h('span', { class: 'pl-count', 'data-role': 'package' }, pkg ? `package ${pkg.number} · ${done}/${n} done` : ''),
      h(
        'span',
        { class: 'pl-count', 'data-role': 'task', title: 'task progress' },
        prog.total ? `task ${prog[(app.task.stage || {}).counter] ?? 0}/${prog.total}` : ''
      )
    ),
    h(
      'span',
      {
        class: `pl-save ${saveState.cls}`,
        'data-role': 'save',
        title: saveState.title,
        onclick: () => app.retry(true)
      },
      saveState.text
    ),
    h('button', { class: 'pl-iconbtn', title: 'Shortcuts (?)', onclick: () => app.help() }, '?')
  ]);
}

/** @param {Labeler} app */
export function saveState(app) {
  let pending = 0,
    errors = 0,
    firstError = null;
  for (const st of app.states.values()) {
    pending += st.pending;
    if (st.error) {
      errors += 1;
      firstError = firstError || st.error;
    }
  }
  if (errors) {
    return { cls: 'error', text: `⚠ ${errors} not saved`, title: `${firstError} (click to retry)` };
  }
  if (pending) {
    return { cls: 'saving', text: `Saving ${pending}…`, title: 'sending answers to the server' };
  }
  return { cls: 'saved', text: '✓ Saved', title: 'every answer given is stored on the server' };
}

/** @param {Labeler} app */
export function renderNotice(app) {
  const text = app.model.get('notice') || '';
  app.notice.textContent = text;
}

/** @param {Labeler} app */
export function showDone(app) {
  const n = app.items.length;
  const pkg = app.model.get('package');
  let body;
  if (!pkg) {
    body = h(
      'div',
      { class: 'pl-done', 'data-role': 'done' },
      h('b', {}, app.model.get('notice') ? '' : 'Nothing to do here'),
      h(
        'div',
        {},
        app.stage === 'label'
          ? 'No package is waiting to be labeled.'
          : `No package is waiting to be ${app.stage === 'check' ? 'checked' : 'accepted'}.`
      )
    );
  } else if (app.stage === 'label') {
    body = h(
      'div',
      { class: 'pl-done', 'data-role': 'done' },
      h('b', {}, `Package ${pkg.number}: all ${n} items answered`),
      h(
        'div',
        {},
        'Press ',
        h('span', { class: 'pl-kbd' }, 'Enter'),
        ' to submit it and take the next package, ',
        h('span', { class: 'pl-kbd' }, ','),
        ' to go back.'
      )
    );
  } else {
    body = h(
      'div',
      { class: 'pl-done', 'data-role': 'done' },
      h('b', {}, `Package ${pkg.number}: ${n} items reviewed`),
      h(
        'div',
        {},
        'Press ',
        h('span', { class: 'pl-kbd' }, 'P'),
        ' to pass it or ',
        h('span', { class: 'pl-kbd' }, 'R'),
        ' to reject it with a comment.'
      )
    );
  }
  app.content.append(body);
}

/** @param {Labeler} app */
export function renderFoot(app) {
  const label = app.stage === 'label';
  const st = app.state;
  const hasSugg = st && st.suggestion;
  const btn = (text, key, onclick, cls = '', attrs = {}) =>
    h(
      'button',
      {
        class: `pl-btn ${cls}`,
        onclick: () => {
          onclick();
          app.focus();
        },
        ...attrs
      },
      text,
      key ? h('span', { class: 'pl-kbd' }, key) : null
    );
  patch(
    app.foot,
    [
      btn('◀ Prev', ',', () => app.go(app.index - 1), '', { disabled: app.index <= 0, 'data-role': 'prev' }),
      btn('Next ▶', '.', () => app.next(), '', { disabled: !app.item, 'data-role': 'next' }),
      label
        ? btn('Skip as invalid', 'X', () => app.askSkip(), 'danger', { disabled: !app.item, 'data-role': 'skip' })
        : null,
      btn('Undo', 'Z', () => app.doUndo(), '', { disabled: !app.undo.length }),
      hasSugg
        ? btn('Accept suggestion', 'A', () => app.acceptSuggestion(true), '', { 'data-role': 'accept-suggestion' })
        : null,
      h('span', { class: 'pl-spacer' }),
      label ? btn('Submit package', '', () => app.submitPackage(), 'primary', { 'data-role': 'submit' }) : null,
      !label ? btn('Pass package', 'P', () => app.verdict('pass'), 'primary', { 'data-role': 'pass' }) : null,
      !label ? btn('Reject package', 'R', () => app.askReject(), 'danger', { 'data-role': 'reject' }) : null
    ].filter(Boolean)
  );
}

/** @param {Labeler} app */
export function flash(app, text) {
  app.notice.textContent = text;
  clearTimeout(app.flashTimer);
  app.flashTimer = setTimeout(() => app.renderNotice(), 5000);
}

/** @param {Labeler} app */
export function prompt(app, title, label, value, done, role) {
  const input = h('input', { type: 'text', value, 'data-role': role });
  const ok = () => {
    const v = input.value;
    app.closeOverlay();
    done(v);
  };
  input.addEventListener('keydown', e => {
    e.stopPropagation();
    if (e.key === 'Enter') {
      e.preventDefault();
      ok();
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      app.closeOverlay();
    }
  });
  app.openOverlay(
    h(
      'div',
      { class: 'pl-dialog' },
      h('h3', {}, title),
      h('div', {}, label),
      input,
      h(
        'div',
        { style: 'display:flex;gap:6px;justify-content:flex-end' },
        h(
          'button',
          { class: 'pl-btn', onclick: () => app.closeOverlay() },
          'Cancel',
          h('span', { class: 'pl-kbd' }, 'Esc')
        ),
        h(
          'button',
          { class: 'pl-btn primary', onclick: ok, 'data-role': 'prompt-ok' },
          'OK',
          h('span', { class: 'pl-kbd' }, 'Enter')
        )
      )
    )
  );
  // after openOverlay, which closes (and forgets) any earlier one: Enter confirms even when
  // pressed before the field has the focus
  app.overlayOk = ok;
  setTimeout(() => {
    input.focus();
    input.select();
  }, 0);
}

/** @param {Labeler} app */
export function help(app) {
  const rows = [
    ["1 … 9, 0 / a label's key", 'pick that label (single choice: answer and go to the next item)'],
    ['Enter / Space', 'confirm the item (several labels, boxes, spans) and go to the next'],
    [', / .  (← / → for choices)', 'previous / next item'],
    ['X', 'skip the item as invalid, with a reason'],
    ['A', 'accept the suggestion (pre-label) and go on;  Shift+A: take it to edit'],
    ['Z / Ctrl+Z', 'undo'],
    ['Tab', 'next question (templates with several questions)'],
    ['R / G', 'boxes: rectangle / polygon tool'],
    ['drag · click points, Enter', 'draw a rectangle · a polygon'],
    ['Delete', 'remove the selected box, span, relation or segment'],
    ['wheel · + / - · F · Shift+drag', 'zoom · zoom · fit · pan'],
    ['Shift+← / →', 'spans: select characters with the keyboard, then a label key'],
    ['L', 'relations: link the selected entity to the next one you click'],
    ['Space', 'audio: play / pause'],
    ['P / R', 'checker, acceptor: pass / reject the package'],
    ['Enter (package done)', 'submit the package and take the next'],
    ['? / H', 'app help']
  ];
  app.openOverlay(
    h(
      'div',
      { class: 'pl-dialog', 'data-role': 'help' },
      h('h3', {}, 'Keyboard shortcuts'),
      h(
        'table',
        {},
        rows.map(([k, v]) => h('tr', {}, h('td', {}, h('span', { class: 'pl-kbd' }, k)), h('td', {}, v)))
      ),
      h(
        'div',
        { style: 'margin-top:8px;color:#5f6368' },
        'Every answer is stored on the server as soon as it is given.'
      )
    )
  );
}

/** @param {Labeler} app */
export function openOverlay(app, dialog) {
  app.closeOverlay();
  app.overlay = h(
    'div',
    {
      class: 'pl-overlay',
      onclick: e => {
        if (e.target === app.overlay) {
          app.closeOverlay();
        }
      }
    },
    dialog
  );
  app.root.append(app.overlay);
}

/** @param {Labeler} app */
export function closeOverlay(app) {
  app.overlayOk = null;
  if (app.overlay) {
    app.overlay.remove();
    app.overlay = null;
    setTimeout(() => app.focus(), 0);
  }
}
