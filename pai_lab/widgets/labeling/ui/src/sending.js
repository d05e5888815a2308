// @ts-check
// What leaves the page: an item's answer (checked complete first), its acknowledgement and the
// task's counters that come with it, retries, a skip, and the package's submit or verdict. Answers
// go through the transport (straight to the server when the page may, else through the kernel).
import { answerFromModels } from './answers.js';
import { uid } from './dom.js';

/** @typedef {import("./app.js").Labeler} Labeler */

// Sends the current item's answer; returns false (and says why) when it is not complete.
/** @param {Labeler} app */
export function commit(app, force = false) {
  const item = app.item,
    st = app.state;
  if (!item) {
    return true;
  }
  if (!st.dirty && (st.saved || st.pending) && !force) {
    return true;
  }
  if (!st.dirty && app.stage !== 'label') {
    return true; // passing unchanged keeps the earlier answer
  }
  const built = answerFromModels(app.questions, st.models, app.contextFor());
  if (built.missing) {
    if (!st.dirty && !force) {
      return true;
    }
    app.flash(`Answer “${built.missing.title}” first${built.why ? `: ${built.why}` : ''}`);
    return false;
  }
  app.sendAnswer(item.seq, { answer: built.answer });
  return true;
}

/** @param {Labeler} app */
export function sendAnswer(app, seq, body) {
  const st = app.states.get(seq);
  const client_id = uid();
  st.pending += 1;
  st.dirty = false;
  st.error = null;
  if (body.skip) {
    st.skip = body.skip;
  } else {
    st.skip = null;
  }
  app.transport.answer({ seq, client_id, stage: app.stage, ...body });
  app.renderHead();
}

// The server stored an answer (ok) or refused it (error), told by the kernel or the server.
/** @param {Labeler} app */
export function stored(app, seq, msg, ok, error, progress) {
  const st = app.states.get(seq);
  if (!st) {
    return;
  }
  st.pending = Math.max(0, st.pending - 1);
  if (ok) {
    st.saved = true;
    if (progress) {
      app.counters(progress);
    }
  } else {
    st.error = error;
    st.saved = false;
    if (msg.skip) {
      st.skip = null;
    }
  }
  app.renderHead();
  if (app.item && app.item.seq === seq) {
    const el = app.side.querySelector('[data-role=item-state]');
    if (el) {
      el.textContent = st.error ? `Not saved: ${st.error}` : st.skip ? `Invalid: ${st.skip}` : 'Saved';
    }
  }
}

// The task's counters come with each acknowledgement (the server owns them); the kernel hears
// of them once the labeler pauses.
/** @param {Labeler} app */
export function counters(app, progress) {
  app.model.set('progress', progress);
  clearTimeout(app.progressTimer);
  app.progressTimer = setTimeout(() => app.model.save_changes(), 1500);
}

/** @param {Labeler} app */
export function retry(app, now = false) {
  app.transport.retry(now);
  if (now) {
    for (const [seq, st] of app.states) {
      if (st.error && !st.pending) {
        const i = app.items.findIndex(it => it.seq === seq);
        if (i >= 0) {
          app.go(i);
          app.flash(`Not saved: ${st.error}`);
          return;
        }
      }
    }
  }
}

/** @param {Labeler} app */
export function askSkip(app) {
  if (!app.item || app.stage !== 'label') {
    return;
  }
  const reason = app.itemProblem || '';
  app.prompt(
    'Skip app item as invalid',
    'Why is it invalid?',
    reason || 'unusable item',
    text => {
      if (!text.trim()) {
        app.flash('Give a reason to skip the item');
        return;
      }
      app.sendAnswer(app.item.seq, { skip: text.trim() });
      app.index += 1;
      app.show();
    },
    'skip-reason'
  );
}

/** @param {Labeler} app */
export function askReject(app) {
  if (app.stage === 'label') {
    return;
  }
  app.commit();
  app.prompt(
    'Reject app package',
    'What should the labeler fix?',
    '',
    text => {
      if (!text.trim()) {
        app.flash('A rejection needs a comment');
        return;
      }
      app.verdict('reject', text.trim());
    },
    'reject-comment'
  );
}

/** @param {Labeler} app */
export function verdict(app, verdict, comment = '') {
  if (app.stage === 'label') {
    return;
  }
  if (app.item && !app.commit()) {
    return;
  }
  app.transport.afterAnswers('review', { verdict, comment });
}

/** @param {Labeler} app */
export function submitPackage(app) {
  if (app.item && !app.commit()) {
    return;
  }
  app.transport.afterAnswers('submit');
}
