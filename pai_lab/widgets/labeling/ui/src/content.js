// @ts-check
// An item's content: text shown as it is, images fitted to the stage (with zoom), audio and video
// players; media come from the cache, which fetches ahead.
import { DECODE_AHEAD, FETCH_AHEAD, TEXT_LIMIT } from './constants.js';
import { cps, h, s } from './dom.js';

/** @typedef {import("./app.js").Labeler} Labeler */

/** @param {Labeler} app */
export function viewSize(app) {
  if (!app.viewBox) {
    // the stage's height is fixed by CSS (in any unit), so images come as tall as they are shown
    const stage = app.content.querySelector('.pl-stage');
    const r = (stage || app.content).getBoundingClientRect();
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const zoomable = app.questions.some(q => q.type === 'boxes');
    const f = dpr * (zoomable ? 1.5 : 1);
    const step = v => Math.ceil((Math.max(v, 320) * f) / 64) * 64;
    app.viewBox = { w: step(r.width || 800), h: Math.round(((stage && r.height) || 384) * f) };
  }
  return app.viewBox;
}

/** @param {Labeler} app */
export function renderContent(app, c, item) {
  const wrap = h('div', { class: 'pl-contentwrap', style: 'display:flex;flex-direction:column;flex:1;min-height:0' });
  app.content.append(wrap);
  const value = item.data[c.key];
  if (c.type === 'text' && app.contents.length > 1) {
    wrap.style.cssText = 'display:flex;flex-direction:column;flex:0 0 auto';
  }
  if (c.type === 'text') {
    const view = {
      type: 'text',
      wrap,
      text: cps(typeof value === 'string' ? value : value == null ? '' : JSON.stringify(value))
    };
    if (typeof value !== 'string') {
      view.problem = `the item has no text under "${c.key}"`;
    } else if (view.text.length > TEXT_LIMIT) {
      view.problem = `app text has ${view.text.length.toLocaleString()} characters, more than the ${TEXT_LIMIT.toLocaleString()} shown at once`;
    }
    return view;
  }
  if (c.type === 'image') {
    const stage = h('div', { class: 'pl-stage', 'data-role': 'stage' });
    wrap.append(stage);
    const view = { type: 'image', wrap, stage, entry: app.media.get(item, c.key, 'image') };
    const paint = () => {
      if (app.item !== item) {
        return;
      }
      if (view.entry.error) {
        app.problem(stage, 'Cannot show app image', view.entry.error);
        view.failed = true;
      } else {
        view.size = { width: view.entry.width, height: view.entry.height };
        app.mountImage(view);
      }
      view.ready = true;
      for (const t of app.tools) {
        if (t.onContentReady) {
          t.onContentReady(c.key);
        }
      }
    };
    if (view.entry.done) {
      paint();
    } else {
      stage.append(h('div', { class: 'pl-loading' }, 'Loading…'));
      view.entry.promise.then(paint);
    }
    return view;
  }
  // audio and video: a player, plus decoded samples for a waveform when a question marks segments
  const kind = c.type;
  const wantsWave = app.questions.some(q => q.type === 'segments' && (q.bind || 'source') === c.key);
  const view = { type: kind, wrap, entry: app.media.get(item, c.key, wantsWave ? 'audio-data' : kind) };
  const paint = () => {
    if (app.item !== item) {
      return;
    }
    wrap.replaceChildren();
    if (view.entry.error) {
      app.problem(wrap, `Cannot play app ${kind}`, view.entry.error);
      view.failed = true;
      return;
    }
    const player = h(kind, {
      class: 'pl-media',
      controls: true,
      preload: 'auto',
      src: view.entry.url,
      'data-role': 'player'
    });
    player.addEventListener('error', () => {
      view.failed = true;
      app.problem(
        wrap,
        `Cannot play app ${kind}`,
        `the browser cannot play it (${player.error && player.error.code === 4 ? 'unsupported codec or format' : 'decode error'})`
      );
    });
    player.addEventListener('loadedmetadata', () => {
      view.duration = player.duration;
    });
    view.player = player;
    wrap.append(player);
    view.duration = view.entry.duration;
    view.ready = true;
    for (const t of app.tools) {
      if (t.onContentReady) {
        t.onContentReady(c.key);
      }
    }
  };
  wrap.append(h('div', { class: 'pl-loading' }, 'Loading…'));
  if (view.entry.done) {
    paint();
  } else {
    view.entry.promise.then(paint);
  }
  return view;
}

/** @param {Labeler} app */
export function problem(app, container, title, detail) {
  container.replaceChildren(
    h(
      'div',
      { class: 'pl-problem', 'data-role': 'problem' },
      h('b', {}, title),
      detail,
      h(
        'div',
        { style: 'margin-top:6px;color:#5f6368' },
        'Press ',
        h('span', { class: 'pl-kbd' }, 'X'),
        ' to skip it as invalid.'
      )
    )
  );
  app.itemProblem = `${title}: ${detail}`;
}

/** @param {Labeler} app */
export function mountImage(app, view) {
  const { stage, entry } = view;
  const canvas = h('div', { class: 'pl-canvas' });
  const img = entry.img;
  img.setAttribute('data-role', 'item-image');
  img.setAttribute('data-seq', String(app.item.seq));
  const svg = s('svg', { viewBox: `0 0 ${entry.width} ${entry.height}`, preserveAspectRatio: 'none' });
  canvas.append(img, svg);
  stage.replaceChildren(canvas);
  view.canvas = canvas;
  view.svg = svg;
  view.img = img;
  view.zoom = 1;
  view.tx = 0;
  view.ty = 0;
  const r = stage.getBoundingClientRect();
  const sw = r.width || 800,
    sh = r.height || 360;
  const scale = Math.min(sw / entry.width, sh / entry.height);
  view.fitW = entry.width * scale;
  view.fitH = entry.height * scale;
  canvas.style.width = `${view.fitW}px`;
  canvas.style.height = `${view.fitH}px`;
  app.applyZoom(view);
}

/** @param {Labeler} app */
export function applyZoom(app, view) {
  if (!view.canvas) {
    return;
  }
  view.canvas.style.transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.zoom})`;
  let badge = view.stage.querySelector('.pl-zoom');
  if (view.zoom !== 1) {
    if (!badge) {
      badge = h('div', { class: 'pl-zoom' });
      view.stage.append(badge);
    }
    badge.textContent = `${Math.round(view.zoom * 100)}%`;
  } else if (badge) {
    badge.remove();
  }
}

/** @param {Labeler} app */
export function preload(app) {
  const kinds = app.contents
    .filter(c => c.type !== 'text')
    .map(c => [
      c.key,
      c.type === 'image'
        ? 'image'
        : app.questions.some(q => q.type === 'segments' && (q.bind || 'source') === c.key)
          ? 'audio-data'
          : c.type
    ]);
  if (!kinds.length) {
    return;
  }
  const ahead = app.fetchAhead();
  for (let i = app.index + 1; i <= app.index + ahead && i < app.items.length; i++) {
    for (const [key, kind] of kinds) {
      if (i <= app.index + DECODE_AHEAD) {
        app.media.get(app.items[i], key, kind, false);
      } else {
        app.media.bytes(app.items[i], key, kind);
      }
    }
  }
}

/** @param {Labeler} app */
export function fetchAhead(app) {
  return app.contents.every(c => c.type === 'image' || c.type === 'text') ? FETCH_AHEAD.image : FETCH_AHEAD.other;
}
