// @ts-check
// Showing an item: its content views, the line that says where its answer stands, and one tool per
// question (choice panels stay from one item to the next, so a move repaints only what changes).
import { TEXT_LIMIT } from './constants.js';
import { h, patch } from './dom.js';
import { makeTool } from './tools/index.js';
import { ChoiceTool } from './tools/choice.js';

/** @typedef {import("./app.js").Labeler} Labeler */

/** @param {Labeler} app */
export function show(app) {
  // Choice questions read the current item's answer from the app: their panels stay from one
  // item to the next, so a move repaints only the choices that change.
  const keep =
    app.tools &&
    app.tools.length &&
    app.toolsFor === app.questions &&
    app.sideInfo &&
    app.tools.every(t => t instanceof ChoiceTool && t.panel.parentNode === app.side)
      ? app.tools
      : null;
  app.mode = null;
  app.activeQ = 0;
  app.tools = [];
  app.contentViews = {};
  app.content.replaceChildren();
  app.renderHead();
  app.renderFoot();
  const item = app.item;
  if (!keep || !item) {
    app.side.replaceChildren();
  }
  if (!item) {
    app.showDone();
    return;
  }
  app.media.trim(app.items, app.index, app.fetchAhead());
  const st = app.state;
  for (const c of app.contents) {
    app.contentViews[c.key] = app.renderContent(c, item);
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
            : app.stage !== 'label'
              ? 'Unchanged: passes with the earlier answer'
              : 'Not answered yet'
  );
  const info = [status];
  if (app.stage !== 'label' && item.answer && !st.dirty) {
    info.push(
      h(
        'div',
        { class: 'pl-suggest' },
        `Showing the ${app.stage === 'accept' && item.check ? 'checked' : 'labeled'} answer; change it to modify.`
      )
    );
  }
  app.relationTool = null;
  if (keep) {
    patch(app.sideInfo, info);
    for (const tool of keep) {
      tool.item = item;
      tool.refresh();
    }
    app.tools = keep;
  } else {
    app.sideInfo = h('div', { style: 'display:contents' }, ...info);
    app.side.append(app.sideInfo);
    app.questions.forEach((q, qi) => {
      const tool = makeTool(app, q, qi, item);
      app.tools.push(tool);
      app.side.append(tool.panel);
    });
    app.toolsFor = app.questions;
  }
  // text nobody marks spans in is shown as it is (classification, custom templates)
  for (const view of Object.values(app.contentViews)) {
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
      app.itemProblem = view.problem;
    }
  }
  app.setActive(0);
  app.preload();
}
