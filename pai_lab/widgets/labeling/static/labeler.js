// pai_lab labeler: one anywidget front end for every labeling template.
//
// The kernel side loads a package's items and stores answers on the server; this module draws
// the item, takes keys and mouse input, and keeps the next items' media fetched and decoded so
// moving on never waits for the kernel or the network.

const PALETTE = ["#1a73e8", "#e8710a", "#188038", "#d93025", "#9334e6", "#007b83", "#b06000", "#c5221f",
  "#3949ab", "#6d4c41", "#00897b", "#5e35b1"];
const NUMBER_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
// Items prepared ahead of the current one: images come sized to the view (tens of kB), so the
// bytes of a whole package fit, and the next few are kept decoded (a few MB each); audio and
// video come as they are, so only a few are fetched ahead.
const DECODE_AHEAD = 8;
const FETCH_AHEAD = { image: 200, other: 4 };
const MEDIA_FETCHES = 3; // fetches in flight at once
const TEXT_LIMIT = 50000; // code points rendered for span marking
const SINGLE = "单选", MULTI = "多选";
// iTAG's built-in question titles, shown in English (the export keeps the originals)
const TITLES = { "单选": "Choose one label", "多选": "Choose labels", "文本内容": "Entities", "音频识别结果": "Transcript",
  "目标检测标签配置": "Boxes", "OCR标签配置": "Text boxes" };

// Jupyter's cross-site check for cookie-authenticated writes: echo its _xsrf cookie in a header
const xsrfToken = () => {
  const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
};

const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
};
// Puts `nodes` into `container`, keeping what is already there and the same: an unchanged part
// of the labeler is neither laid out nor painted again when the labeler moves on. An element kept
// keeps its own listeners, so use it only where the new ones would do the same (head, footer).
const patch = (container, nodes) => {
  const old = [...container.childNodes];
  if (old.length !== nodes.length) { container.replaceChildren(...nodes); return; }
  nodes.forEach((node, i) => {
    const was = old[i];
    if (was.isEqualNode(node)) return;
    if (was.nodeType === Node.TEXT_NODE && node.nodeType === Node.TEXT_NODE) { was.data = node.data; return; }
    const sameShell = was.nodeType === Node.ELEMENT_NODE && node.nodeType === Node.ELEMENT_NODE &&
      was.tagName === node.tagName && was.attributes.length === node.attributes.length &&
      [...node.attributes].every((a) => was.getAttribute(a.name) === a.value);
    if (sameShell) patch(was, [...node.childNodes]); else was.replaceWith(node);
  });
};
const SVG = "http://www.w3.org/2000/svg";
const s = (tag, attrs = {}) => {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};
const uid = () => (crypto.randomUUID ? crypto.randomUUID() :
  "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0; return (c === "x" ? r : (r & 3) | 8).toString(16);
  }));
const round2 = (v) => Math.round(v * 100) / 100;
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const cps = (text) => Array.from(text || "");

// ------------------------------------------------------------------------------------------ answers

// Each question has an editable model; these convert between it and the iTAG result element.
function resultKey(q) { return q.label_title || (q.multi ? MULTI : SINGLE); }

function emptyModel(q) {
  switch (q.type) {
    case "single": return { value: null };
    case "multi": return { values: [] };
    case "text": return { text: "" };
    case "boxes": return { shapes: [] };
    case "spans": return { spans: [] };
    case "relations": return { rels: [] };
    case "segments": return { segs: [] };
  }
  return {};
}

function isRect(points) {
  if (points.length !== 4) return false;
  const xs = new Set(points.map((p) => p[0])), ys = new Set(points.map((p) => p[1]));
  return xs.size === 2 && ys.size === 2;
}

function matches(q, el) {
  if (q.type === "relations") return Array.isArray(el);
  if (!el || typeof el !== "object" || Array.isArray(el)) return false;
  if (["single", "multi", "text", "boxes"].includes(q.type)) return String(el.questionId) === String(q.id);
  if (q.type === "spans") return "objects" in el && !("duration" in el);
  return "objects" in el && "duration" in el;
}

function modelsFromResults(questions, results) {
  const out = questions.map(emptyModel);
  if (!Array.isArray(results)) return out;
  let pos = 0;
  questions.forEach((q, qi) => {
    const el = results[pos];
    if (el === undefined || !matches(q, el)) return;
    pos += 1;
    const key = resultKey(q);
    if (q.type === "single") out[qi] = { value: el.data };
    else if (q.type === "multi") out[qi] = { values: [...(el.data || [])] };
    else if (q.type === "text") out[qi] = { text: el.data || "" };
    else if (q.type === "boxes") out[qi] = {
      shapes: (el.data || []).map((sh) => ({
        id: sh.id || uid(), points: sh.value.map((p) => [p[0], p[1]]),
        kind: isRect(sh.value) ? "rect" : "polygon",
        label: (sh.labels || {})[key] ?? null, text: q.text_title ? ((sh.labels || {})[q.text_title] ?? "") : undefined,
      })),
    };
    else if (q.type === "spans") out[qi] = {
      spans: (el.objects || []).map((o) => ({ start: o.start, end: o.end, label: (o.result || {})[key] })),
    };
    else if (q.type === "relations") out[qi] = {
      rels: el.map((r) => ({ from: [r.from.start, r.from.end], to: [r.to.start, r.to.end],
        label: (r.result || {})[key] })),
    };
    else if (q.type === "segments") out[qi] = {
      segs: (el.objects || []).map((o) => ({ id: o.id, start: o.start, end: o.end,
        label: (o.result || {})[key] ?? null, text: q.text_title ? ((o.result || {})[q.text_title] ?? "") : undefined })),
      duration: el.duration || 0,
    };
  });
  return out;
}

// Build the results list; returns {results} or {missing: question} when a required answer is absent.
function resultsFromModels(questions, models, ctx) {
  const results = [];
  for (let qi = 0; qi < questions.length; qi++) {
    const q = questions[qi], m = models[qi], key = resultKey(q);
    if (q.type === "single") {
      if (m.value === null || m.value === undefined) { if (q.required) return { missing: q }; continue; }
      results.push({ questionId: q.id, data: m.value, markTitle: q.title, type: "survey/value" });
    } else if (q.type === "multi") {
      if (!m.values.length && q.required) return { missing: q };
      if (!m.values.length) continue;
      results.push({ questionId: q.id, data: [...m.values], markTitle: q.title, type: "survey/multivalue" });
    } else if (q.type === "text") {
      if (!m.text.trim() && q.required) return { missing: q };
      if (!m.text.trim()) continue;
      results.push({ questionId: q.id, data: m.text, markTitle: q.title, type: "survey/value" });
    } else if (q.type === "boxes") {
      const size = ctx.sizeOf(q.bind || "source");
      if (!size) return { missing: q, why: "the image did not load" };
      for (const sh of m.shapes) {
        if (!q.text_title && (sh.label === null || sh.label === undefined || (Array.isArray(sh.label) && !sh.label.length)))
          return { missing: q, why: "a box has no label: select it and press a label key" };
      }
      results.push({
        questionId: q.id,
        data: m.shapes.map((sh) => {
          const labels = {};
          if (sh.label !== null && sh.label !== undefined && !(Array.isArray(sh.label) && !sh.label.length))
            labels[key] = sh.label;
          if (q.text_title) labels[q.text_title] = sh.text || "";
          return { id: sh.id, type: "image/polygon", value: sh.points.map((p) => [round2(p[0]), round2(p[1])]), labels };
        }),
        rotation: 0, markTitle: q.title, width: size.width, type: "image", height: size.height,
      });
    } else if (q.type === "spans") {
      const text = ctx.textOf(q.bind || "source");
      results.push({
        objects: m.spans.map((sp) => ({ result: { [key]: sp.label }, color: null, id: null,
          text: text.slice(sp.start, sp.end + 1).join(""), start: sp.start, end: sp.end })),
        empty: m.spans.length === 0,
      });
    } else if (q.type === "relations") {
      const text = ctx.textOf(q.bind || "source");
      const end = (r) => ({ x: r[2] || 0, y: r[3] || 0, start: r[0], end: r[1], text: text.slice(r[0], r[1] + 1).join("") });
      results.push(m.rels.map((r) => ({ result: { [key]: r.label }, from: end(r.from), to: end(r.to) })));
    } else if (q.type === "segments") {
      results.push({
        duration: round2(ctx.durationOf(q.bind || "source") || m.duration || 0),
        objects: m.segs.map((sg) => {
          const result = {};
          if (q.text_title) result[q.text_title] = sg.text || "";
          if (sg.label !== null && sg.label !== undefined) result[key] = sg.label;
          return { result, color: null, id: sg.id, start: round2(sg.start), end: round2(sg.end) };
        }),
        empty: m.segs.length === 0,
      });
    }
  }
  return { results };
}

// ------------------------------------------------------------------------------------------ media

// Fetches an item's media straight from the server (thumbnails sized to the view) or, when the
// page cannot reach it, through the kernel. Two tiers: the bytes of many items ahead (small, so
// the server prepares them while the labeler looks at the current one), and decoded images for
// the next few (a few MB each once decoded).
class MediaCache {
  constructor(app) {
    this.app = app;
    this.entries = new Map();
    this.waiting = new Map();
    this.counter = 0;
    this.queue = []; // entries waiting for a fetch slot, first asked first fetched
    this.active = 0;
  }

  key(seq, field, kind) { return `${seq}|${field}|${kind}`; }

  // The entry whose bytes are being fetched. `urgent` (the item on screen) starts at once;
  // the others wait in line, a few fetches at a time, so the next item is never starved by far ones.
  bytes(item, field, kind, urgent = false) {
    const k = this.key(item.seq, field, kind);
    let e = this.entries.get(k);
    if (!e) {
      e = { key: k, seq: item.seq, started: false, promise: null };
      e.fetched = new Promise((resolve) => {
        e.start = () => {
          e.started = true;
          this.active += 1;
          this.fetchBytes(item, field, kind).then((data) => resolve({ data }), (error) => resolve({ error }))
            .then(() => { this.active -= 1; this.pump(); });
        };
      });
      this.entries.set(k, e);
      this.queue.push(e);
    }
    if (urgent && !e.started) {
      this.queue.splice(this.queue.indexOf(e), 1);
      e.start();
    }
    this.pump();
    return e;
  }

  // The entry decoded: `done` once `img`/`buffer`/`url` (or `error`) is set; `promise` settles then.
  get(item, field, kind, urgent = true) {
    const e = this.bytes(item, field, kind, urgent);
    if (!e.promise) {
      e.promise = e.fetched.then(({ data, error }) => {
        if (error) throw error;
        return this.decode(kind, data);
      }).then((r) => Object.assign(e, r, { done: true }),
        (err) => Object.assign(e, { error: String(err && err.message || err), done: true }));
    }
    return e;
  }

  pump() {
    while (this.active < MEDIA_FETCHES && this.queue.length) this.queue.shift().start();
  }

  // the media's bytes, from the server (images sized to the view) or through the kernel
  async fetchBytes(item, field, kind) {
    const value = item.data[field];
    if (typeof value !== "string" || !value) throw new Error(`the item has no ${field} to show`);
    const app = this.app;
    const box = kind === "image" ? app.viewSize() : null;
    let blob, width = null, height = null;
    const direct = await app.directBase();
    if (direct) {
      const params = new URLSearchParams({ key: field });
      if (box) { params.set("w", box.w); params.set("h", box.h); }
      const resp = await fetch(`${direct}/items/${item.seq}/media?${params}`, { credentials: "same-origin" });
      if (!resp.ok) {
        let msg = `${resp.status} ${resp.statusText}`;
        try { msg = (await resp.json()).error.message; } catch (e) { /* keep the status */ }
        throw new Error(msg);
      }
      width = +resp.headers.get("X-Original-Width") || null;
      height = +resp.headers.get("X-Original-Height") || null;
      blob = await resp.blob();
    } else {
      const r = await this.viaKernel(item.seq, field, box);
      blob = r.blob; width = r.width; height = r.height;
    }
    return { blob, width, height };
  }

  // an <img> decoded and ready to paint, or decoded audio samples, or a URL for a player
  async decode(kind, { blob, width, height }) {
    const url = URL.createObjectURL(blob);
    if (kind === "image") {
      const img = new Image();
      img.src = url;
      img.draggable = false;
      try { await img.decode(); } catch (e) {
        URL.revokeObjectURL(url);
        throw new Error("the file is not an image the browser can decode (corrupt or an unsupported format)");
      }
      return { url, img, width: width || img.naturalWidth, height: height || img.naturalHeight };
    }
    if (kind === "audio-data") {
      // decoded samples for a waveform
      const ctx = new (window.OfflineAudioContext || window.webkitOfflineAudioContext)(1, 44100, 44100);
      let buffer;
      try { buffer = await ctx.decodeAudioData(await blob.arrayBuffer()); } catch (e) {
        URL.revokeObjectURL(url);
        throw new Error("this audio cannot be decoded here (unsupported codec or a damaged file)");
      }
      return { url, buffer, duration: buffer.duration };
    }
    return { url };
  }

  viaKernel(seq, field, box) {
    const req = ++this.counter;
    return new Promise((resolve, reject) => {
      this.waiting.set(req, { resolve, reject });
      this.app.send({ type: "media", req, seq, key: field, w: box ? box.w : 0, h: box ? box.h : 0 });
      setTimeout(() => {
        if (this.waiting.delete(req)) reject(new Error("the kernel did not send the media in time"));
      }, 60000);
    });
  }

  onKernelMedia(msg, buffers) {
    const w = this.waiting.get(msg.req);
    if (!w) return;
    this.waiting.delete(msg.req);
    if (!msg.ok) { w.reject(new Error(msg.error)); return; }
    w.resolve({ blob: new Blob([buffers[0]], { type: msg.mime }), width: msg.width, height: msg.height });
  }

  // keep bytes for the items ahead and decoded media only around the current one
  trim(items, index, ahead) {
    const keep = new Set(items.slice(Math.max(0, index - 2), index + ahead + 2).map((i) => i.seq));
    for (const [k, e] of this.entries) {
      if (!keep.has(e.seq)) {
        if (e.url) URL.revokeObjectURL(e.url);
        this.entries.delete(k);
      }
    }
    this.queue = this.queue.filter((e) => this.entries.has(e.key));
  }

  clear() {
    for (const e of this.entries.values()) if (e.url) URL.revokeObjectURL(e.url);
    this.entries.clear();
    this.queue = [];
  }
}

// ------------------------------------------------------------------------------------------ the app

class Labeler {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.index = 0;
    this.states = new Map(); // seq -> {models, saved, pending, error, skip, dirty}
    this.undo = [];
    this.pending = new Map(); // client_id -> {seq, msg, sent}: answers not yet acknowledged
    this.posting = new Map(); // seq -> the last direct post of that item's answer (kept in order)
    this.afterSaved = []; // control messages (submit, verdicts) waiting for the answers before them
    this.activeQ = 0;
    this.media = new MediaCache(this);
    this.viewBox = null;
    this._direct = undefined;
    this.build();
    this.load();
    this.onMsg = (msg, buffers) => this.message(msg, buffers);
    this.onChange = () => this.load();
    model.on("msg:custom", this.onMsg);
    model.on("change:items", this.onChange);
    model.on("change:package", () => this.renderHead());
    model.on("change:notice", () => this.renderNotice());
    model.on("change:progress", () => this.renderHead());
    this.retryTimer = setInterval(() => this.retry(), 4000);
    this.send({ type: "hello" });
    this.directBase(); // learn early whether media and answers can go straight to the server
  }

  destroy() {
    clearInterval(this.retryTimer);
    this.model.off("msg:custom", this.onMsg);
    this.model.off("change:items", this.onChange);
    this.media.clear();
  }

  send(msg) { this.model.send(msg); }

  // ------------------------------------------------------------------ server access

  async directBase() {
    // The page talks to the server directly when it is the same pai_lab server the kernel uses
    // (checked once by asking it for the task, and who the page is); otherwise media and answers
    // come through the kernel.
    if (this._direct !== undefined) return this._direct;
    if (!this._directProbe) this._directProbe = (async () => {
      const path = this.model.get("api_path");
      if (!path || this.model.get("media_via_kernel")) return null;
      let base = "/";
      const cfg = document.getElementById("jupyter-config-data");
      if (cfg) { try { base = JSON.parse(cfg.textContent).baseUrl || "/"; } catch (e) { /* default */ } }
      const url = base.replace(/\/$/, "") + "/" + path.replace(/^\//, "");
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (!r.ok || (await r.json()).id !== this.task.id) return null;
        const me = await fetch(url.slice(0, url.indexOf("/workspaces/")) + "/me", { credentials: "same-origin" });
        this._me = me.ok ? (await me.json()).username : null;
        return url;
      } catch (e) { /* not reachable from the page */ }
      return null;
    })().then((v) => (this._direct = v));
    return this._directProbe;
  }

  viewSize() {
    if (!this.viewBox) {
      // the stage's height is fixed by CSS (in any unit), so images come as tall as they are shown
      const stage = this.content.querySelector(".pl-stage");
      const r = (stage || this.content).getBoundingClientRect();
      const dpr = Math.min(window.devicePixelRatio || 1, 2);
      const zoomable = this.questions.some((q) => q.type === "boxes");
      const f = dpr * (zoomable ? 1.5 : 1);
      const step = (v) => Math.ceil(Math.max(v, 320) * f / 64) * 64;
      this.viewBox = { w: step(r.width || 800), h: Math.round((stage && r.height || 384) * f) };
    }
    return this.viewBox;
  }

  // ------------------------------------------------------------------ state from the kernel

  load() {
    this.task = this.model.get("task") || {};
    this.stage = this.model.get("stage") || "label";
    this.items = this.model.get("items") || [];
    this.questions = (this.task.spec && this.task.spec.questions) || [];
    this.contents = (this.task.spec && this.task.spec.contents) || [];
    this.labels = assignHotkeys((this.task.labels || []).map((l, i) => ({
      name: l.name, color: l.color || PALETTE[i % PALETTE.length], hotkey: l.hotkey || null,
    })));
    this.states = new Map();
    this.undo = [];
    for (const item of this.items) this.states.set(item.seq, this.initialState(item));
    this.media.clear();
    this.index = this.firstOpen();
    this.renderHead();
    this.renderNotice();
    this.show();
  }

  stageAnswer(item) {
    if (this.stage === "check") return item.check || item.label;
    if (this.stage === "accept") return item.verify || item.check || item.label;
    return item.label;
  }

  answeredNow(item) {
    if (this.stage === "label") return item.label !== null || item.skipped !== null;
    if (this.stage === "check") return item.check !== null || !item.sampled || item.skipped !== null;
    return item.verify !== null || item.skipped !== null;
  }

  initialState(item) {
    const ans = this.stageAnswer(item);
    const suggestion = item.prelabel ? modelsFromResults(this.questions, item.prelabel) : null;
    // an unanswered item opens with its suggestion pre-selected (choices on, boxes drawn): A, or
    // moving on, stores it as the answer; any edit starts from it
    const preselect = suggestion && this.stage === "label" && !this.answeredNow(item);
    return {
      models: preselect ? clone(suggestion) : modelsFromResults(this.questions, ans),
      suggestion,
      saved: this.answeredNow(item), skip: item.skipped, error: null, pending: 0, dirty: false,
      reviewed: false, counted: this.answeredNow(item),
    };
  }

  firstOpen() {
    const i = this.items.findIndex((it) => !this.states.get(it.seq).saved);
    return i < 0 ? this.items.length : i;
  }

  get item() { return this.items[this.index]; }
  get state() { return this.item ? this.states.get(this.item.seq) : null; }

  // ------------------------------------------------------------------ skeleton

  build() {
    this.el.innerHTML = "";
    this.root = h("div", { class: "pl-root", tabindex: "0", "data-lm-suppress-shortcuts": "true" });
    this.head = h("div", { class: "pl-head" });
    this.notice = h("div", { class: "pl-notice" });
    this.content = h("div", { class: "pl-content" });
    this.side = h("div", { class: "pl-side" });
    this.foot = h("div", { class: "pl-foot" });
    this.root.append(this.head, this.notice, h("div", { class: "pl-body" }, this.content, this.side), this.foot);
    this.el.append(this.root);
    this.root.addEventListener("keydown", (e) => this.key(e));
    this.root.addEventListener("mousedown", (e) => {
      if (!e.target.closest("input, textarea, button, .pl-text")) setTimeout(() => this.focus(), 0);
    });
    setTimeout(() => this.focus(), 0);
  }

  focus() { if (!this.overlay) this.root.focus({ preventScroll: true }); }

  renderHead() {
    const pkg = this.model.get("package") || null;
    const prog = this.model.get("progress") || {};
    const n = this.items.length;
    const done = this.items.filter((it) => { const st = this.states.get(it.seq); return st && (st.saved || st.reviewed); }).length;
    const shown = Math.min(this.index + 1, n);
    const stage = this.stage;
    const saveState = this.saveState();
    patch(this.head, [
      h("span", { class: "pl-title", title: this.task.name }, this.task.name || "labeling"),
      h("span", { class: `pl-badge ${stage}` }, { label: "labeler", check: "checker", accept: "acceptor" }[stage]),
      h("div", { class: "pl-progress" },
        h("span", { class: "pl-count", "data-role": "position" }, n ? `${shown}/${n}` : "0/0"),
        h("div", { class: "pl-bar", title: `${done} of ${n} answered in this package` },
          h("div", { style: `width:${n ? (100 * done) / n : 0}%` })),
        h("span", { class: "pl-count", "data-role": "package" },
          pkg ? `package ${pkg.number} · ${done}/${n} done` : ""),
        h("span", { class: "pl-count", "data-role": "task", title: "task progress" },
          prog.total ? `task ${prog[{ label: "labeled", check: "checked", accept: "accepted" }[stage]] ?? 0}/${prog.total}` : "")),
      h("span", { class: `pl-save ${saveState.cls}`, "data-role": "save", title: saveState.title,
        onclick: () => this.retry(true) }, saveState.text),
      h("button", { class: "pl-iconbtn", title: "Shortcuts (?)", onclick: () => this.help() }, "?"),
    ]);
  }

  saveState() {
    let pending = 0, errors = 0, firstError = null;
    for (const st of this.states.values()) {
      pending += st.pending;
      if (st.error) { errors += 1; firstError = firstError || st.error; }
    }
    if (errors) return { cls: "error", text: `⚠ ${errors} not saved`, title: `${firstError} (click to retry)` };
    if (pending) return { cls: "saving", text: `Saving ${pending}…`, title: "sending answers to the server" };
    return { cls: "saved", text: "✓ Saved", title: "every answer given is stored on the server" };
  }

  renderNotice() {
    const text = this.model.get("notice") || "";
    this.notice.textContent = text;
  }

  // ------------------------------------------------------------------ item display

  show() {
    // Choice questions read the current item's answer from the app: their panels stay from one
    // item to the next, so a move repaints only the choices that change.
    const keep = this.tools && this.tools.length && this.toolsFor === this.questions && this.sideInfo &&
      this.tools.every((t) => t instanceof ChoiceTool && t.panel.parentNode === this.side) ? this.tools : null;
    this.mode = null;
    this.activeQ = 0;
    this.tools = [];
    this.contentViews = {};
    this.content.replaceChildren();
    this.renderHead();
    this.renderFoot();
    const item = this.item;
    if (!keep || !item) this.side.replaceChildren();
    if (!item) { this.showDone(); return; }
    this.media.trim(this.items, this.index, this.fetchAhead());
    const st = this.state;
    for (const c of this.contents) this.contentViews[c.key] = this.renderContent(c, item);
    const status = h("div", { class: "pl-itemstate" + (st.skip ? " skipped" : ""), "data-role": "item-state" },
      st.skip ? `Invalid: ${st.skip}` : st.error ? `Not saved: ${st.error}` :
        st.pending ? "Saving…" : st.saved ? "Saved" : this.stage !== "label" ? "Unchanged: passes with the earlier answer" : "Not answered yet");
    const info = [status];
    if (this.stage !== "label" && item.label && !st.dirty)
      info.push(h("div", { class: "pl-suggest" }, `Showing the ${this.stage === "accept" && item.check ? "checked" : "labeled"} answer; change it to modify.`));
    this.relationTool = null;
    if (keep) {
      patch(this.sideInfo, info);
      for (const tool of keep) { tool.item = item; tool.refresh(); }
      this.tools = keep;
    } else {
      this.sideInfo = h("div", { style: "display:contents" }, ...info);
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
      if (view.type !== "text" || view.spanTool) continue;
      const shown = view.text.length > TEXT_LIMIT ? view.text.slice(0, TEXT_LIMIT).join("") + " …" : view.text.join("");
      view.wrap.append(h("div", { class: "pl-text", "data-role": "text" }, shown));
      if (view.problem) view.wrap.prepend(h("div", { class: "pl-problem", "data-role": "problem", style: "margin:0" },
        h("b", {}, "Shown in part"), view.problem, ". Press ", h("span", { class: "pl-kbd" }, "X"),
        " to skip it as invalid if it cannot be labeled."));
      if (view.problem) this.itemProblem = view.problem;
    }
    this.setActive(0);
    this.preload();
  }

  renderContent(c, item) {
    const wrap = h("div", { class: "pl-contentwrap", style: "display:flex;flex-direction:column;flex:1;min-height:0" });
    this.content.append(wrap);
    const value = item.data[c.key];
    if (c.type === "text" && this.contents.length > 1) wrap.style.cssText = "display:flex;flex-direction:column;flex:0 0 auto";
    if (c.type === "text") {
      const view = { type: "text", wrap, text: cps(typeof value === "string" ? value : (value == null ? "" : JSON.stringify(value))) };
      if (typeof value !== "string") view.problem = `the item has no text under "${c.key}"`;
      else if (view.text.length > TEXT_LIMIT) view.problem =
        `this text has ${view.text.length.toLocaleString()} characters, more than the ${TEXT_LIMIT.toLocaleString()} shown at once`;
      return view;
    }
    if (c.type === "image") {
      const stage = h("div", { class: "pl-stage", "data-role": "stage" });
      wrap.append(stage);
      const view = { type: "image", wrap, stage, entry: this.media.get(item, c.key, "image") };
      const paint = () => {
        if (this.item !== item) return;
        if (view.entry.error) { this.problem(stage, "Cannot show this image", view.entry.error); view.failed = true; }
        else { view.size = { width: view.entry.width, height: view.entry.height }; this.mountImage(view); }
        view.ready = true;
        for (const t of this.tools) if (t.onContentReady) t.onContentReady(c.key);
      };
      if (view.entry.done) paint();
      else { stage.append(h("div", { class: "pl-loading" }, "Loading…")); view.entry.promise.then(paint); }
      return view;
    }
    // audio and video: a player, plus decoded samples for a waveform when a question marks segments
    const kind = c.type;
    const wantsWave = this.questions.some((q) => q.type === "segments" && (q.bind || "source") === c.key);
    const view = { type: kind, wrap, entry: this.media.get(item, c.key, wantsWave ? "audio-data" : kind) };
    const paint = () => {
      if (this.item !== item) return;
      wrap.replaceChildren();
      if (view.entry.error) { this.problem(wrap, `Cannot play this ${kind}`, view.entry.error); view.failed = true; return; }
      const player = h(kind, { class: "pl-media", controls: true, preload: "auto", src: view.entry.url,
        "data-role": "player" });
      player.addEventListener("error", () => {
        view.failed = true;
        this.problem(wrap, `Cannot play this ${kind}`,
          `the browser cannot play it (${player.error && player.error.code === 4 ? "unsupported codec or format" : "decode error"})`);
      });
      player.addEventListener("loadedmetadata", () => { view.duration = player.duration; });
      view.player = player;
      wrap.append(player);
      view.duration = view.entry.duration;
      view.ready = true;
      for (const t of this.tools) if (t.onContentReady) t.onContentReady(c.key);
    };
    wrap.append(h("div", { class: "pl-loading" }, "Loading…"));
    if (view.entry.done) paint(); else view.entry.promise.then(paint);
    return view;
  }

  problem(container, title, detail) {
    container.replaceChildren(h("div", { class: "pl-problem", "data-role": "problem" },
      h("b", {}, title), detail, h("div", { style: "margin-top:6px;color:#5f6368" },
        "Press ", h("span", { class: "pl-kbd" }, "X"), " to skip it as invalid.")));
    this.itemProblem = `${title}: ${detail}`;
  }

  mountImage(view) {
    const { stage, entry } = view;
    const canvas = h("div", { class: "pl-canvas" });
    const img = entry.img;
    img.setAttribute("data-role", "item-image");
    img.setAttribute("data-seq", String(this.item.seq));
    const svg = s("svg", { viewBox: `0 0 ${entry.width} ${entry.height}`, preserveAspectRatio: "none" });
    canvas.append(img, svg);
    stage.replaceChildren(canvas);
    view.canvas = canvas; view.svg = svg; view.img = img;
    view.zoom = 1; view.tx = 0; view.ty = 0;
    const r = stage.getBoundingClientRect();
    const sw = r.width || 800, sh = r.height || 360;
    const scale = Math.min(sw / entry.width, sh / entry.height);
    view.fitW = entry.width * scale; view.fitH = entry.height * scale;
    canvas.style.width = `${view.fitW}px`;
    canvas.style.height = `${view.fitH}px`;
    this.applyZoom(view);
  }

  applyZoom(view) {
    if (!view.canvas) return;
    view.canvas.style.transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.zoom})`;
    let badge = view.stage.querySelector(".pl-zoom");
    if (view.zoom !== 1) {
      if (!badge) { badge = h("div", { class: "pl-zoom" }); view.stage.append(badge); }
      badge.textContent = `${Math.round(view.zoom * 100)}%`;
    } else if (badge) badge.remove();
  }

  preload() {
    const kinds = this.contents.filter((c) => c.type !== "text").map((c) => [c.key,
      c.type === "image" ? "image" : (this.questions.some((q) => q.type === "segments" && (q.bind || "source") === c.key) ? "audio-data" : c.type)]);
    if (!kinds.length) return;
    const ahead = this.fetchAhead();
    for (let i = this.index + 1; i <= this.index + ahead && i < this.items.length; i++)
      for (const [key, kind] of kinds) {
        if (i <= this.index + DECODE_AHEAD) this.media.get(this.items[i], key, kind, false);
        else this.media.bytes(this.items[i], key, kind);
      }
  }

  fetchAhead() {
    return this.contents.every((c) => c.type === "image" || c.type === "text") ? FETCH_AHEAD.image : FETCH_AHEAD.other;
  }

  showDone() {
    const n = this.items.length;
    const pkg = this.model.get("package");
    let body;
    if (!pkg) {
      body = h("div", { class: "pl-done", "data-role": "done" }, h("b", {}, this.model.get("notice") ? "" : "Nothing to do here"),
        h("div", {}, this.stage === "label" ? "No package is waiting to be labeled." :
          `No package is waiting to be ${this.stage === "check" ? "checked" : "accepted"}.`));
    } else if (this.stage === "label") {
      body = h("div", { class: "pl-done", "data-role": "done" }, h("b", {}, `Package ${pkg.number}: all ${n} items answered`),
        h("div", {}, "Press ", h("span", { class: "pl-kbd" }, "Enter"), " to submit it and take the next package, ",
          h("span", { class: "pl-kbd" }, ","), " to go back."));
    } else {
      body = h("div", { class: "pl-done", "data-role": "done" }, h("b", {}, `Package ${pkg.number}: ${n} items reviewed`),
        h("div", {}, "Press ", h("span", { class: "pl-kbd" }, "P"), " to pass it or ", h("span", { class: "pl-kbd" }, "R"),
          " to reject it with a comment."));
    }
    this.content.append(body);
  }

  renderFoot() {
    const label = this.stage === "label";
    const st = this.state;
    const hasSugg = st && st.suggestion;
    const btn = (text, key, onclick, cls = "", attrs = {}) =>
      h("button", { class: `pl-btn ${cls}`, onclick: () => { onclick(); this.focus(); }, ...attrs }, text,
        key ? h("span", { class: "pl-kbd" }, key) : null);
    patch(this.foot, [
      btn("◀ Prev", ",", () => this.go(this.index - 1), "", { disabled: this.index <= 0, "data-role": "prev" }),
      btn("Next ▶", ".", () => this.next(), "", { disabled: !this.item, "data-role": "next" }),
      label ? btn("Skip as invalid", "X", () => this.askSkip(), "danger", { disabled: !this.item, "data-role": "skip" }) : null,
      btn("Undo", "Z", () => this.doUndo(), "", { disabled: !this.undo.length }),
      hasSugg ? btn("Accept suggestion", "A", () => this.acceptSuggestion(true), "", { "data-role": "accept-suggestion" }) : null,
      h("span", { class: "pl-spacer" }),
      label ? btn("Submit package", "", () => this.submitPackage(), "primary", { "data-role": "submit" }) : null,
      !label ? btn("Pass package", "P", () => this.verdict("pass"), "primary", { "data-role": "pass" }) : null,
      !label ? btn("Reject package", "R", () => this.askReject(), "danger", { "data-role": "reject" }) : null,
    ].filter(Boolean));
  }

  setActive(qi) {
    if (!this.tools.length) return;
    this.activeQ = (qi + this.tools.length) % this.tools.length;
    this.tools.forEach((t, i) => t.panel.classList.toggle("active", i === this.activeQ && this.tools.length > 1));
  }

  // ------------------------------------------------------------------ editing and answers

  // Called by tools before a change: remembers the item's models for undo.
  change(fn) {
    const st = this.state;
    this.undo.push({ seq: this.item.seq, models: clone(st.models), dirty: st.dirty });
    if (this.undo.length > 200) this.undo.shift();
    fn(st.models);
    st.dirty = true;
    this.renderFoot();
  }

  doUndo() {
    const last = this.undo.pop();
    if (!last) return;
    const i = this.items.findIndex((it) => it.seq === last.seq);
    const st = this.states.get(last.seq);
    st.models = last.models;
    st.dirty = true;
    if (i !== this.index) { this.index = i; this.show(); } else {
      // the tools' own state (a selection, a half-drawn polygon, what is drawn) follows the answer back
      for (const t of this.tools) if (t.restored) t.restored();
      this.refreshTools();
    }
    this.renderFoot();
  }

  refreshTools() { for (const t of this.tools) t.refresh(); }

  contextFor() {
    return {
      sizeOf: (key) => this.contentViews[key] && this.contentViews[key].size,
      textOf: (key) => (this.contentViews[key] && this.contentViews[key].text) || [],
      durationOf: (key) => this.contentViews[key] && this.contentViews[key].duration,
    };
  }

  // Sends the current item's answer; returns false (and says why) when it is not complete.
  commit(force = false) {
    const item = this.item, st = this.state;
    if (!item) return true;
    if (!st.dirty && (st.saved || st.pending) && !force) return true;
    if (!st.dirty && this.stage !== "label") return true; // passing unchanged keeps the earlier answer
    const built = resultsFromModels(this.questions, st.models, this.contextFor());
    if (built.missing) {
      if (!st.dirty && !force) return true;
      this.flash(`Answer “${built.missing.title}” first${built.why ? `: ${built.why}` : ""}`);
      return false;
    }
    this.sendAnswer(item.seq, { results: built.results });
    return true;
  }

  sendAnswer(seq, body) {
    const st = this.states.get(seq);
    const client_id = uid();
    const msg = { type: "answer", seq, client_id, stage: this.stage, ...body };
    const p = { seq, msg, sent: performance.now() };
    this.pending.set(client_id, p);
    st.pending += 1; st.dirty = false; st.error = null;
    if (body.skip) st.skip = body.skip; else st.skip = null;
    this.transmit(p);
    this.renderHead();
  }

  // An answer goes straight to the server when this page may store it there (it holds the
  // package under the same login), so the next item never waits on the kernel; else through
  // the kernel. Posts of one item's answers go one after another, so the last one given wins.
  transmit(p) {
    // until the probe says which way answers go, wait for it: one item's answers never take two ways
    if (this._direct === undefined) {
      this.directBase().then(() => this.transmit(p));
      return;
    }
    const base = this.answersBase();
    if (!base) { this.send(p.msg); return; }
    const { seq, client_id, stage, results, skip } = p.msg;
    const body = JSON.stringify({ item: seq, client_id, stage, results: results ?? null, skip: skip ?? null });
    const post = () => fetch(`${base}/answers`, {
      method: "POST", credentials: "same-origin", body,
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrfToken() },
    }).then(async (resp) => {
      if (resp.ok) { this.acked(client_id, true); return; }
      let said = null;
      try { said = (await resp.json()).error; } catch (e) { /* not one of our errors */ }
      if ((resp.status === 401 || resp.status === 403) && !(said && said.message)) {
        // refused by Jupyter, not by pai_lab (no login cookie, a cross-site check the page cannot
        // pass): from now on answers go through the kernel, this one first
        this._me = null;
        this.send(p.msg);
        return;
      }
      const error = said && said.message ? said.message : `${resp.status} ${resp.statusText}`;
      this.acked(client_id, false, error);
    }, () => { /* not reached the server: stays pending, and is sent again by retry() */ });
    const chained = (this.posting.get(seq) || Promise.resolve()).then(post);
    this.posting.set(seq, chained);
    chained.then(() => { if (this.posting.get(seq) === chained) this.posting.delete(seq); });
  }

  // The API base for direct answers, known once the media probe and the login check are done.
  answersBase() {
    const pkg = this.model.get("package");
    return this._direct && this._me && pkg && pkg.holder === this._me ? this._direct : null;
  }

  // submit and verdicts go through the kernel; they wait until every answer before them is stored
  sendAfterAnswers(msg) {
    if (!this.pending.size) { this.send(msg); return; }
    this.afterSaved.push(msg);
  }

  retry(now = false) {
    const t = performance.now();
    for (const p of this.pending.values())
      if (now || t - p.sent > 10000) { p.sent = t; this.transmit(p); }
    if (now) {
      for (const [seq, st] of this.states) if (st.error && !st.pending) {
        const i = this.items.findIndex((it) => it.seq === seq);
        if (i >= 0) { this.go(i); this.flash(`Not saved: ${st.error}`); return; }
      }
    }
  }

  // The server stored an answer (ok) or refused it (error), told by the kernel or the server.
  acked(client_id, ok, error, progress) {
    const p = this.pending.get(client_id);
    if (!p) return;
    this.pending.delete(client_id);
    const st = this.states.get(p.seq);
    if (st) {
      st.pending = Math.max(0, st.pending - 1);
      if (ok) {
        st.saved = true;
        if (progress) { this.model.set("progress", progress); st.counted = true; } else this.count(st);
      } else { st.error = error; st.saved = false; if (p.msg.skip) st.skip = null; }
      this.renderHead();
      if (this.item && this.item.seq === p.seq) {
        const el = this.side.querySelector("[data-role=item-state]");
        if (el) el.textContent = st.error ? `Not saved: ${st.error}` : st.skip ? `Invalid: ${st.skip}` : "Saved";
      }
    }
    if (!this.pending.size) for (const msg of this.afterSaved.splice(0)) this.send(msg);
  }

  // The task's progress after an item's first stored answer in this stage, counted here for
  // answers stored directly; the kernel hears of it once the labeler pauses.
  count(st) {
    if (st.counted) return;
    st.counted = true;
    const key = { label: "labeled", check: "checked", accept: "accepted" }[this.stage];
    const progress = { ...(this.model.get("progress") || {}) };
    progress[key] = (progress[key] || 0) + 1;
    this.model.set("progress", progress);
    clearTimeout(this.progressTimer);
    this.progressTimer = setTimeout(() => this.model.save_changes(), 1500);
  }

  message(msg, buffers) {
    if (msg.type === "ack") {
      this.acked(msg.client_id, msg.ok, msg.error, msg.progress);
    } else if (msg.type === "media") {
      this.media.onKernelMedia(msg, buffers);
    } else if (msg.type === "error") {
      this.flash(msg.error);
    }
  }

  flash(text) {
    this.notice.textContent = text;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => this.renderNotice(), 5000);
  }

  go(i) {
    if (i < 0 || i > this.items.length) return;
    if (this.overlay) this.closeOverlay();
    if (i !== this.index && this.item && !this.commit()) return;
    this.index = i;
    this.itemProblem = null;
    this.show();
  }

  next() {
    // a reviewer moving on without changes has looked at the item
    if (this.state && this.stage !== "label") this.state.reviewed = true;
    if (!this.commit(true)) return;
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
    if (!st || !st.suggestion) return;
    this.change((models) => { models.splice(0, models.length, ...clone(st.suggestion)); });
    if (andNext) this.next(); else this.refreshTools();
  }

  askSkip() {
    if (!this.item || this.stage !== "label") return;
    const reason = this.itemProblem || "";
    this.prompt("Skip this item as invalid", "Why is it invalid?", reason || "unusable item", (text) => {
      if (!text.trim()) { this.flash("Give a reason to skip the item"); return; }
      this.sendAnswer(this.item.seq, { skip: text.trim() });
      this.index += 1;
      this.show();
    }, "skip-reason");
  }

  askReject() {
    if (this.stage === "label") return;
    this.commit();
    this.prompt("Reject this package", "What should the labeler fix?", "", (text) => {
      if (!text.trim()) { this.flash("A rejection needs a comment"); return; }
      this.verdict("reject", text.trim());
    }, "reject-comment");
  }

  verdict(verdict, comment = "") {
    if (this.stage === "label") return;
    if (this.item && !this.commit()) return;
    this.sendAfterAnswers({ type: "review", verdict, comment });
  }

  submitPackage() {
    if (this.item && !this.commit()) return;
    this.sendAfterAnswers({ type: "submit" });
  }

  // ------------------------------------------------------------------ overlays

  prompt(title, label, value, done, role) {
    const input = h("input", { type: "text", value, "data-role": role });
    const ok = () => { const v = input.value; this.closeOverlay(); done(v); };
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") { e.preventDefault(); ok(); }
      if (e.key === "Escape") { e.preventDefault(); this.closeOverlay(); }
    });
    this.openOverlay(h("div", { class: "pl-dialog" }, h("h3", {}, title), h("div", {}, label), input,
      h("div", { style: "display:flex;gap:6px;justify-content:flex-end" },
        h("button", { class: "pl-btn", onclick: () => this.closeOverlay() }, "Cancel", h("span", { class: "pl-kbd" }, "Esc")),
        h("button", { class: "pl-btn primary", onclick: ok, "data-role": "prompt-ok" }, "OK", h("span", { class: "pl-kbd" }, "Enter")))));
    // after openOverlay, which closes (and forgets) any earlier one: Enter confirms even when
    // pressed before the field has the focus
    this.overlayOk = ok;
    setTimeout(() => { input.focus(); input.select(); }, 0);
  }

  help() {
    const rows = [
      ["1 … 9, 0 / a label's key", "pick that label (single choice: answer and go to the next item)"],
      ["Enter / Space", "confirm the item (several labels, boxes, spans) and go to the next"],
      [", / .  (← / → for choices)", "previous / next item"],
      ["X", "skip the item as invalid, with a reason"],
      ["A", "accept the suggestion (pre-label) and go on;  Shift+A: take it to edit"],
      ["Z / Ctrl+Z", "undo"],
      ["Tab", "next question (templates with several questions)"],
      ["R / G", "boxes: rectangle / polygon tool"],
      ["drag · click points, Enter", "draw a rectangle · a polygon"],
      ["Delete", "remove the selected box, span, relation or segment"],
      ["wheel · + / - · F · Shift+drag", "zoom · zoom · fit · pan"],
      ["Shift+← / →", "spans: select characters with the keyboard, then a label key"],
      ["L", "relations: link the selected entity to the next one you click"],
      ["Space", "audio: play / pause"],
      ["P / R", "checker, acceptor: pass / reject the package"],
      ["Enter (package done)", "submit the package and take the next"],
      ["? / H", "this help"],
    ];
    this.openOverlay(h("div", { class: "pl-dialog", "data-role": "help" }, h("h3", {}, "Keyboard shortcuts"),
      h("table", {}, rows.map(([k, v]) => h("tr", {}, h("td", {}, h("span", { class: "pl-kbd" }, k)), h("td", {}, v)))),
      h("div", { style: "margin-top:8px;color:#5f6368" }, "Every answer is stored on the server as soon as it is given.")));
  }

  openOverlay(dialog) {
    this.closeOverlay();
    this.overlay = h("div", { class: "pl-overlay", onclick: (e) => { if (e.target === this.overlay) this.closeOverlay(); } }, dialog);
    this.root.append(this.overlay);
  }

  closeOverlay() {
    this.overlayOk = null;
    if (this.overlay) { this.overlay.remove(); this.overlay = null; setTimeout(() => this.focus(), 0); }
  }

  // ------------------------------------------------------------------ keys

  labelForKey(e, q) {
    const labels = this.labelsOf(q);
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    return labels.find((l) => l.hotkey && l.hotkey.toLowerCase() === k) || null;
  }

  labelsOf(q) {
    if (q && Array.isArray(q.labels)) {
      if (!this._qlabels) this._qlabels = new Map();
      if (!this._qlabels.has(q)) this._qlabels.set(q, assignHotkeys(q.labels.map((name, i) => {
        const known = this.labels.find((l) => l.name === name);
        return { name, color: known ? known.color : PALETTE[i % PALETTE.length], hotkey: null };
      })));
      return this._qlabels.get(q);
    }
    return this.labels;
  }

  key(e) {
    if (this.overlay) {
      if (e.key === "Enter" && this.overlayOk && !e.target.closest("input, textarea, button")) {
        e.preventDefault(); this.overlayOk();
      } else if (e.key === "Escape" || e.key === "?" || (e.key === "h" && !e.target.closest("input"))) {
        e.preventDefault(); this.closeOverlay();
      }
      return;
    }
    const typing = e.target.closest("input, textarea");
    if (typing) {
      if (e.key === "Escape") { e.preventDefault(); e.target.blur(); this.focus(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.next(); }
      else if (e.key === "Enter" && e.target.tagName === "INPUT") { e.preventDefault(); e.target.blur(); this.focus(); }
      e.stopPropagation();
      return;
    }
    e.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the labeler
    const handled = this.handleKey(e);
    if (handled) e.preventDefault();
  }

  handleKey(e) {
    const k = e.key;
    if (k === "?" || (k === "h" && !e.ctrlKey)) { this.help(); return true; }
    if (!this.item) {
      if (k === "Enter" && this.stage === "label" && this.model.get("package")) { this.submitPackage(); return true; }
      if (k === ",") { this.go(this.index - 1); return true; }
      if (this.stage !== "label" && (k === "p" || k === "P")) { this.verdict("pass"); return true; }
      if (this.stage !== "label" && (k === "r" || k === "R")) { this.askReject(); return true; }
      return false;
    }
    // the active question's tool first: label keys, drawing keys, arrows
    const tool = this.tools[this.activeQ];
    if (tool && tool.key(e)) return true;
    for (const t of this.tools) if (t !== tool && t.globalKey && t.globalKey(e)) return true;
    if ((k === "z" || k === "Z") && !e.shiftKey) { this.doUndo(); return true; }
    if (k === "Tab" && this.tools.length > 1) { this.setActive(this.activeQ + (e.shiftKey ? -1 : 1)); return true; }
    if (k === "Enter" || k === " ") { this.next(); return true; }
    if (k === ",") { this.go(this.index - 1); return true; }
    if (k === ".") { this.next(); return true; }
    if (k === "ArrowLeft" && !this.usesArrows()) { this.go(this.index - 1); return true; }
    if (k === "ArrowRight" && !this.usesArrows()) { this.next(); return true; }
    if ((k === "x" || k === "X") && this.stage === "label") { this.askSkip(); return true; }
    if (k === "a" && this.state.suggestion) { this.acceptSuggestion(true); return true; }
    if (k === "A" && this.state.suggestion) { this.acceptSuggestion(false); return true; }
    if (this.stage !== "label" && (k === "p" || k === "P")) { this.verdict("pass"); return true; }
    if (this.stage !== "label" && (k === "R" || (k === "r" && !this.questions.some((q) => q.type === "boxes")))) {
      this.askReject(); return true;
    }
    return false;
  }

  usesArrows() { return this.questions.some((q) => ["boxes", "spans", "segments"].includes(q.type)); }
}

// Label keys: the task's own hotkeys, else a one-character name (labels "0".."9" keep their
// digit), else the next free number key in order.
function assignHotkeys(labels) {
  const taken = new Set(labels.filter((l) => l.hotkey).map((l) => l.hotkey.toLowerCase()));
  for (const l of labels) {
    if (!l.hotkey && l.name.length === 1 && !taken.has(l.name.toLowerCase()) && /[0-9a-z]/i.test(l.name)) {
      l.hotkey = l.name.toLowerCase(); taken.add(l.hotkey);
    }
  }
  const free = NUMBER_KEYS.filter((k) => !taken.has(k));
  for (const l of labels) if (!l.hotkey && free.length) l.hotkey = free.shift();
  return labels;
}

// ------------------------------------------------------------------------------------------ tools

function makeTool(app, q, qi, item) {
  const make = { single: ChoiceTool, multi: ChoiceTool, text: TextTool, boxes: BoxTool, spans: SpanTool,
    relations: RelationTool, segments: SegmentTool }[q.type];
  return new make(app, q, qi, item);
}

class Tool {
  constructor(app, q, qi, item) {
    this.app = app; this.q = q; this.qi = qi; this.item = item;
    this.panel = h("div", { class: "pl-q", "data-question": q.type });
    this.panel.addEventListener("mousedown", () => app.setActive(qi));
    this.panel.append(h("h4", { title: q.title }, TITLES[q.title] || q.title));
    this.body = h("div");
    this.panel.append(this.body);
  }
  get model() { return this.app.state.models[this.qi]; }
  get suggestion() { const sg = this.app.state.suggestion; return sg ? sg[this.qi] : null; }
  labels() { return this.app.labelsOf(this.q); }
  color(name) { const l = this.labels().find((x) => x.name === name); return l ? l.color : "#666"; }
  key() { return false; }
  refresh() {}
}

class ChoiceTool extends Tool {
  constructor(...a) { super(...a); this.refresh(); }
  refresh() {
    const multi = this.q.type === "multi";
    const m = this.model, sg = this.suggestion;
    const on = (name) => (multi ? m.values.includes(name) : m.value === name);
    const sugg = (name) => sg && (multi ? (sg.values || []).includes(name) : sg.value === name);
    // patched, not rebuilt: a choice's listener is the same whichever item is shown
    patch(this.body, [...this.labels().map((l) =>
      h("div", { class: `pl-choice${on(l.name) ? " on" : ""}${sugg(l.name) ? " sugg" : ""}`, "data-label": l.name,
        onclick: () => this.pick(l.name) },
      h("span", { class: "sw", style: `background:${l.color}` }), h("span", { class: "nm" }, l.name),
      l.hotkey ? h("span", { class: "pl-kbd" }, l.hotkey) : null)),
    sg && (sg.value || (sg.values || []).length) ? h("div", { class: "pl-suggest" }, "Suggestion: ",
      h("b", {}, multi ? sg.values.join(", ") : sg.value), " — ", h("span", { class: "pl-kbd" }, "A"), " to accept") : null,
    multi ? h("div", { class: "pl-suggest" }, "Several labels: pick, then ", h("span", { class: "pl-kbd" }, "Enter")) : null,
    ].filter(Boolean));
  }
  pick(name) {
    if (this.q.type === "multi") {
      this.app.change((ms) => {
        const vs = ms[this.qi].values;
        const i = vs.indexOf(name);
        if (i >= 0) vs.splice(i, 1); else vs.push(name);
      });
      this.refresh();
      return;
    }
    this.app.change((ms) => { ms[this.qi].value = name; });
    if (this.app.tools.length === 1) this.app.answerAndNext();
    else { this.refresh(); this.app.setActive(this.qi + 1); }
  }
  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    const l = this.app.labelForKey(e, this.q);
    if (l) { this.pick(l.name); return true; }
    return false;
  }
}

class TextTool extends Tool {
  constructor(...a) {
    super(...a);
    this.area = h("textarea", { rows: "5", "data-role": "transcript", placeholder: "Type the answer; Ctrl+Enter to confirm" });
    this.area.value = this.model.text || "";
    this.area.addEventListener("input", () => {
      const v = this.area.value;
      this.app.change((ms) => { ms[this.qi].text = v; });
    });
    this.body.append(this.area);
    const sg = this.suggestion;
    if (sg && sg.text) this.body.append(h("div", { class: "pl-suggest" }, "Suggestion: ", h("i", {}, sg.text), " — ",
      h("span", { class: "pl-kbd" }, "A"), " to accept"));
  }
  refresh() { this.area.value = this.model.text || ""; }
  key(e) {
    if (e.key === "t" || e.key === "T" || (e.key === "Enter" && !this.model.text && this.q.required)) {
      this.area.focus(); return true;
    }
    return false;
  }
}

// ------------------------------------------------------------------ boxes (detection, OCR)

class BoxTool extends Tool {
  constructor(...a) {
    super(...a);
    this.mode = (this.q.tools || ["rect", "polygon"])[0] || "rect";
    this.selected = null;
    this.draft = null;
    this.currentLabel = null;
    this.list = h("div");
    this.toolbar = h("div", { class: "pl-tools" });
    this.body.append(this.toolbar, this.list);
    this.refresh();
    this.onContentReady(this.q.bind || "source");
  }
  get view() { return this.app.contentViews[this.q.bind || "source"]; }

  restored() {
    if (this.selected && !this.model.shapes.some((x) => x.id === this.selected)) this.selected = null;
    this.draft = null;
    this.draw();
  }

  onContentReady(key) {
    if (key !== (this.q.bind || "source")) return;
    const v = this.view;
    if (!v || !v.svg || v.bound === this) return;
    v.bound = this;
    v.stage.classList.add("drawing");
    v.stage.addEventListener("pointerdown", (e) => this.down(e));
    v.stage.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.draw();
  }

  toImage(e) {
    const v = this.view, r = v.svg.getBoundingClientRect();
    return [clamp(((e.clientX - r.left) / r.width) * v.size.width, 0, v.size.width),
      clamp(((e.clientY - r.top) / r.height) * v.size.height, 0, v.size.height)];
  }

  down(e) {
    const v = this.view;
    if (!v || !v.size) return;
    this.app.setActive(this.qi);
    e.preventDefault();
    if (e.shiftKey || e.button === 1) { this.pan(e); return; }
    if (e.button !== 0) return;
    const p = this.toImage(e);
    const handle = e.target.getAttribute && e.target.getAttribute("data-handle");
    const shapeId = e.target.getAttribute && e.target.getAttribute("data-shape");
    if (this.mode === "polygon" && this.draft) { this.addPoint(p); return; }
    if (handle !== null && handle !== undefined && this.selected) { this.drag(e, "handle", +handle, p); return; }
    if (shapeId) { this.select(shapeId); this.drag(e, "move", null, p); return; }
    if (this.mode === "polygon") { this.draft = { points: [p], hover: p }; this.draw(); return; }
    this.drag(e, "new", null, p);
  }

  drag(e, kind, handle, start) {
    const v = this.view;
    const shape = this.selected ? this.model.shapes.find((x) => x.id === this.selected) : null;
    const before = shape ? clone(shape.points) : null;
    let moved = false;
    const target = v.stage;
    target.setPointerCapture && target.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const p = this.toImage(ev);
      if (Math.abs(p[0] - start[0]) + Math.abs(p[1] - start[1]) > 1) moved = true;
      if (kind === "new") { this.draft = { rect: [start, p] }; this.draw(); }
      else if (kind === "move" && shape) {
        const dx = p[0] - start[0], dy = p[1] - start[1];
        const xs = before.map((q) => q[0]), ys = before.map((q) => q[1]);
        const ddx = clamp(dx, -Math.min(...xs), v.size.width - Math.max(...xs));
        const ddy = clamp(dy, -Math.min(...ys), v.size.height - Math.max(...ys));
        shape.points = before.map((q) => [q[0] + ddx, q[1] + ddy]);
        this.draw();
      } else if (kind === "handle" && shape) {
        if (shape.kind === "rect") {
          // the dragged corner follows the pointer, the opposite corner stays
          const opp = before[(handle + 2) % 4];
          shape.points = rectPoints(opp, p);
        } else shape.points = before.map((q, i) => (i === handle ? p : q));
        this.draw();
      }
    };
    const up = (ev) => {
      target.removeEventListener("pointermove", move);
      target.removeEventListener("pointerup", up);
      const p = this.toImage(ev);
      if (kind === "new") {
        this.draft = null;
        const w = Math.abs(p[0] - start[0]), hh = Math.abs(p[1] - start[1]);
        if (w >= 2 && hh >= 2) this.addShape("rect", rectPoints(start, p));
        else { this.selected = null; this.draw(); this.refresh(); }
      } else if (moved && shape) {
        const after = clone(shape.points);
        shape.points = before;
        this.app.change(() => { shape.points = after; });
        this.draw(); this.refresh();
      }
    };
    target.addEventListener("pointermove", move);
    target.addEventListener("pointerup", up);
  }

  pan(e) {
    const v = this.view, x0 = e.clientX, y0 = e.clientY, tx = v.tx, ty = v.ty;
    v.stage.classList.add("panning");
    const move = (ev) => { v.tx = tx + ev.clientX - x0; v.ty = ty + ev.clientY - y0; this.app.applyZoom(v); };
    const up = () => {
      v.stage.classList.remove("panning");
      window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  wheel(e) {
    e.preventDefault();
    this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX, e.clientY);
  }

  zoomAt(factor, cx, cy) {
    const v = this.view;
    if (!v || !v.canvas) return;
    const z = clamp(v.zoom * factor, 1, 16);
    const sr = v.stage.getBoundingClientRect();
    if (cx === undefined) { cx = sr.left + sr.width / 2; cy = sr.top + sr.height / 2; }
    // keep the point under the cursor in place: canvas origin sits at the stage's centred offset
    const cr = v.canvas.getBoundingClientRect();
    const ux = (cx - cr.left) / v.zoom, uy = (cy - cr.top) / v.zoom;
    v.tx += (v.zoom - z) * ux; v.ty += (v.zoom - z) * uy;
    v.zoom = z;
    if (z === 1) { v.tx = 0; v.ty = 0; }
    this.app.applyZoom(v);
  }

  addPoint(p) {
    const d = this.draft;
    const first = d.points[0];
    const v = this.view, tol = (v.size.width / v.fitW) * 8 / v.zoom;
    if (d.points.length >= 3 && Math.hypot(p[0] - first[0], p[1] - first[1]) < tol) { this.closePolygon(); return; }
    d.points.push(p);
    this.draw();
  }

  closePolygon() {
    const d = this.draft;
    this.draft = null;
    if (d && d.points.length >= 3) this.addShape("polygon", d.points); else this.draw();
  }

  addShape(kind, points) {
    const label = this.q.text_title && !this.currentLabel ? null :
      (this.currentLabel || (this.labels()[0] ? this.labels()[0].name : null));
    const shape = { id: uid(), kind, points: points.map((p) => [round2(p[0]), round2(p[1])]),
      label: this.q.multi && label ? [label] : label, text: this.q.text_title ? "" : undefined };
    this.app.change((ms) => { ms[this.qi].shapes.push(shape); });
    this.selected = shape.id;
    this.draw(); this.refresh();
    if (this.q.text_title) {
      const input = this.list.querySelector(`input[data-shape="${shape.id}"]`);
      if (input) setTimeout(() => input.focus(), 0);
    }
  }

  select(id) { this.selected = id; this.draw(); this.refresh(); }

  setLabel(name) {
    this.currentLabel = name;
    const shape = this.selected && this.model.shapes.find((x) => x.id === this.selected);
    if (shape) {
      this.app.change(() => {
        if (this.q.multi) {
          const cur = Array.isArray(shape.label) ? shape.label : (shape.label ? [shape.label] : []);
          shape.label = cur.includes(name) ? cur.filter((x) => x !== name) : [...cur, name];
        } else shape.label = name;
      });
    }
    this.draw(); this.refresh();
  }

  key(e) {
    const k = e.key;
    if (e.ctrlKey || e.metaKey) return false;
    if (this.draft && this.draft.points && (k === "Enter")) { this.closePolygon(); return true; }
    if (k === "Escape") { this.draft = null; this.selected = null; this.draw(); this.refresh(); return true; }
    const l = this.app.labelForKey(e, this.q);
    if (l) { this.setLabel(l.name); return true; }
    const tools = this.q.tools || ["rect", "polygon"];  // the same default the tool buttons show
    if (k === "r" && tools.includes("rect")) { this.mode = "rect"; this.draft = null; this.refresh(); return true; }
    if (k === "g" && tools.includes("polygon")) { this.mode = "polygon"; this.refresh(); return true; }
    if ((k === "Delete" || k === "Backspace") && this.selected) {
      const id = this.selected;
      this.app.change((ms) => { ms[this.qi].shapes = ms[this.qi].shapes.filter((x) => x.id !== id); });
      this.selected = null; this.draw(); this.refresh(); return true;
    }
    if (k === "Tab" && this.app.tools.length === 1 && this.model.shapes.length) {
      const ids = this.model.shapes.map((x) => x.id);
      const i = ids.indexOf(this.selected);
      this.select(ids[(i + (e.shiftKey ? -1 : 1) + ids.length) % ids.length]);
      return true;
    }
    if (k === "+" || k === "=") { this.zoomAt(1.25); return true; }
    if (k === "-") { this.zoomAt(0.8); return true; }
    if (k === "f" || k === "F") { const v = this.view; if (v) { v.zoom = 1; v.tx = 0; v.ty = 0; this.app.applyZoom(v); } return true; }
    if (k.startsWith("Arrow") && this.selected) {
      const shape = this.model.shapes.find((x) => x.id === this.selected);
      const step = e.shiftKey ? 10 : 1;
      const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[k];
      const v = this.view;
      this.app.change(() => {
        shape.points = shape.points.map((p) => [clamp(p[0] + dx, 0, v.size.width), clamp(p[1] + dy, 0, v.size.height)]);
      });
      this.draw(); return true;
    }
    if (k === "Enter" && this.q.text_title && this.selected) {
      const input = this.list.querySelector(`input[data-shape="${this.selected}"]`);
      const shape = this.model.shapes.find((x) => x.id === this.selected);
      if (input && shape && !shape.text) { input.focus(); return true; }
    }
    return false;
  }

  draw() {
    const v = this.view;
    if (!v || !v.svg) return;
    const svg = v.svg;
    svg.replaceChildren();
    const scale = v.size.width / (v.fitW || v.size.width);
    const sugg = this.suggestion;
    if (sugg && !this.model.shapes.length) for (const sh of sugg.shapes || [])
      svg.append(s("polygon", { class: "pl-shape suggestion", points: sh.points.map((p) => p.join(",")).join(" "),
        stroke: this.color(Array.isArray(sh.label) ? sh.label[0] : sh.label), fill: "none" }));
    for (const sh of this.model.shapes) {
      const name = Array.isArray(sh.label) ? sh.label.join(", ") : (sh.label || "");
      const color = this.color(Array.isArray(sh.label) ? sh.label[0] : sh.label);
      const poly = s("polygon", { class: `pl-shape${sh.id === this.selected ? " selected" : ""}`, "data-shape": sh.id,
        points: sh.points.map((p) => p.join(",")).join(" "), stroke: color, fill: color });
      svg.append(poly);
      const tag = s("text", { class: "pl-shape-label", x: sh.points[0][0] + 2 * scale, y: Math.max(sh.points[0][1] - 4 * scale, 12 * scale),
        fill: color, "font-size": 12 * scale });
      tag.textContent = [name, sh.text].filter(Boolean).join(" · ");
      tag.style.strokeWidth = `${3 * scale}px`;
      svg.append(tag);
      if (sh.id === this.selected) sh.points.forEach((p, i) => svg.append(s("circle", {
        class: "pl-handle", cx: p[0], cy: p[1], r: 5 * scale, stroke: color, "data-handle": i })));
    }
    const d = this.draft;
    if (d && d.rect) svg.append(s("polygon", { class: "pl-shape", points: rectPoints(...d.rect).map((p) => p.join(",")).join(" "),
      stroke: "#1a73e8", fill: "#1a73e8" }));
    if (d && d.points) svg.append(s("polyline", { class: "pl-shape", points: d.points.map((p) => p.join(",")).join(" "),
      stroke: "#1a73e8", fill: "none" }));
  }

  refresh() {
    const tools = this.q.tools || ["rect", "polygon"];
    this.toolbar.replaceChildren(...[
      tools.includes("rect") ? h("button", { class: `pl-btn${this.mode === "rect" ? " on" : ""}`,
        onclick: () => { this.mode = "rect"; this.refresh(); } }, "▭ Rectangle", h("span", { class: "pl-kbd" }, "R")) : null,
      tools.includes("polygon") ? h("button", { class: `pl-btn${this.mode === "polygon" ? " on" : ""}`,
        onclick: () => { this.mode = "polygon"; this.refresh(); } }, "⬠ Polygon", h("span", { class: "pl-kbd" }, "G")) : null].filter(Boolean));
    const rows = [];
    const labels = this.labels();
    if (labels.length) rows.push(h("div", { style: "margin-bottom:6px" }, ...labels.map((l) =>
      h("div", { class: `pl-choice${this.currentLabel === l.name ? " current" : ""}`, "data-label": l.name,
        onclick: () => this.setLabel(l.name) },
      h("span", { class: "sw", style: `background:${l.color}` }), h("span", { class: "nm" }, l.name),
      l.hotkey ? h("span", { class: "pl-kbd" }, l.hotkey) : null))));
    this.model.shapes.forEach((sh, i) => {
      const name = Array.isArray(sh.label) ? sh.label.join(", ") : (sh.label || "(no label)");
      const row = h("div", { class: `pl-list-row${sh.id === this.selected ? " on" : ""}`, "data-role": "shape-row",
        onclick: (e) => { if (e.target.tagName !== "INPUT") this.select(sh.id); } },
      h("span", { class: "sw", style: `width:8px;height:8px;background:${this.color(Array.isArray(sh.label) ? sh.label[0] : sh.label)}` }),
      h("span", { class: "nm" }, `${i + 1}. ${name}`));
      if (this.q.text_title) {
        const input = h("input", { type: "text", "data-shape": sh.id, placeholder: "transcription", value: sh.text || "" });
        input.addEventListener("focus", () => { this.selected = sh.id; this.draw(); });
        input.addEventListener("change", () => { const v = input.value; this.app.change(() => { sh.text = v; }); this.draw(); });
        row.append(input);
      }
      row.append(h("button", { class: "pl-btn", title: "Delete", onclick: (e) => {
        e.stopPropagation(); this.selected = sh.id; this.key({ key: "Delete" });
      } }, "×"));
      rows.push(row);
    });
    if (!this.model.shapes.length) rows.push(h("div", { class: "pl-suggest" },
      this.mode === "rect" ? "Drag on the image to draw a box." : "Click points; Enter or the first point closes."));
    const sg = this.suggestion;
    if (sg && (sg.shapes || []).length) rows.push(h("div", { class: "pl-suggest" },
      `Suggestion: ${sg.shapes.length} box(es) (dashed) — `, h("span", { class: "pl-kbd" }, "A"), " accept, ",
      h("span", { class: "pl-kbd" }, "Shift+A"), " edit"));
    this.list.replaceChildren(...rows);
  }
}

function rectPoints(a, b) {
  const x1 = Math.min(a[0], b[0]), x2 = Math.max(a[0], b[0]), y1 = Math.min(a[1], b[1]), y2 = Math.max(a[1], b[1]);
  return [[x1, y1], [x1, y2], [x2, y2], [x2, y1]];
}

// ------------------------------------------------------------------ spans (NER) and relations

class SpanTool extends Tool {
  constructor(...a) {
    super(...a);
    this.selected = -1;
    this.kb = null; // keyboard selection {anchor, caret}
    this.linking = null;
    this.list = h("div");
    this.labelList = h("div", { style: "margin-bottom:6px" });
    this.body.append(this.labelList, this.list);
    this.mount();
    this.refresh();
  }
  get view() { return this.app.contentViews[this.q.bind || "source"]; }

  mount() {
    const v = this.view;
    if (!v || v.type !== "text") return;
    if (v.problem) {
      this.app.problem(v.wrap, "Cannot mark spans in this item", v.problem);
      v.failed = true;
      return;
    }
    this.textEl = h("div", { class: "pl-text", "data-role": "text" });
    v.wrap.append(this.textEl);
    v.spanTool = this;
    this.textEl.addEventListener("mouseup", () => setTimeout(() => this.fromSelection(), 0));
    this.textEl.addEventListener("click", (e) => {
      const seg = e.target.closest(".pl-seg.ent");
      if (!seg || !window.getSelection().isCollapsed) return;
      const idx = +seg.getAttribute("data-span");
      if (this.app.relationTool && this.app.relationTool.linking !== null) { this.app.relationTool.linkTo(idx); return; }
      this.selected = idx; this.renderText(); this.refresh();
    });
  }

  // code-point offsets of the page selection inside the text
  fromSelection() {
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || !this.textEl) return;
    const r = sel.getRangeAt(0);
    if (!this.textEl.contains(r.startContainer) || !this.textEl.contains(r.endContainer)) return;
    const off = (node, offset) => {
      const seg = (node.nodeType === 3 ? node.parentElement : node).closest(".pl-seg");
      if (!seg) return null;
      const base = +seg.getAttribute("data-a");
      if (node.nodeType !== 3) return base + (offset > 0 ? cps(seg.textContent).length : 0);
      return base + cps(node.textContent.slice(0, offset)).length;
    };
    let a = off(r.startContainer, r.startOffset), b = off(r.endContainer, r.endOffset);
    if (a === null || b === null) return;
    const text = this.view.text;
    while (a < b && /\s/.test(text[a])) a += 1; // trim spaces picked up by a sloppy drag
    while (b > a && /\s/.test(text[b - 1])) b -= 1;
    if (b <= a) return;
    this.kb = { anchor: a, caret: b };
    sel.removeAllRanges();
    this.renderText();
    this.app.setActive(this.qi);
    this.app.focus();
    if (this.armed) this.mark(this.armed);
  }

  range() {
    if (!this.kb || this.kb.anchor === this.kb.caret) return null;
    return [Math.min(this.kb.anchor, this.kb.caret), Math.max(this.kb.anchor, this.kb.caret) - 1];
  }

  mark(label) {
    const rg = this.range();
    if (!rg) {
      if (this.selected >= 0) { // relabel the selected span
        const sp = this.model.spans[this.selected];
        this.app.change(() => { sp.label = this.q.multi ? toggle(sp.label, label) : label; });
        this.renderText(); this.refresh();
      } else { this.armed = label; this.refresh(); }
      return;
    }
    const [start, end] = rg;
    const spans = this.model.spans;
    const same = spans.findIndex((x) => x.start === start && x.end === end);
    // iTAG's rule: entities may nest but not cross
    const crosses = spans.find((x) => x.start < start && x.end >= start && x.end < end || x.start > start && x.start <= end && x.end > end);
    if (crosses && same < 0) {
      this.app.flash(`This span crosses “${this.view.text.slice(crosses.start, crosses.end + 1).join("")}”; entities may nest but not cross`);
      return;
    }
    if (same >= 0) this.app.change(() => { spans[same].label = this.q.multi ? toggle(spans[same].label, label) : label; });
    else this.app.change((ms) => { ms[this.qi].spans.push({ start, end, label: this.q.multi ? [label] : label }); });
    this.model.spans.sort((x, y) => x.start - y.start || y.end - x.end);
    this.selected = this.model.spans.findIndex((x) => x.start === start && x.end === end);
    this.kb = { anchor: end + 1, caret: end + 1 };
    this.renderText(); this.refresh();
  }

  renderText() {
    if (!this.textEl) return;
    const text = this.view.text;
    const spans = this.model.spans;
    const sugg = (!spans.length && this.suggestion) ? this.suggestion.spans || [] : [];
    const bounds = new Set([0, text.length]);
    for (const sp of [...spans, ...sugg]) { bounds.add(sp.start); bounds.add(sp.end + 1); }
    const rg = this.range();
    if (rg) { bounds.add(rg[0]); bounds.add(rg[1] + 1); }
    if (this.kb) bounds.add(this.kb.caret);
    const cuts = [...bounds].filter((x) => x >= 0 && x <= text.length).sort((x, y) => x - y);
    const frag = document.createDocumentFragment();
    for (let i = 0; i + 1 < cuts.length; i++) {
      const a = cuts[i], b = cuts[i + 1];
      const cover = spans.map((sp, idx) => ({ sp, idx })).filter(({ sp }) => sp.start <= a && sp.end >= b - 1);
      const inner = cover.sort((x, y) => (x.sp.end - x.sp.start) - (y.sp.end - y.sp.start))[0];
      const el = h("span", { class: "pl-seg", "data-a": a }, text.slice(a, b).join(""));
      if (inner) {
        const lab = Array.isArray(inner.sp.label) ? inner.sp.label[0] : inner.sp.label;
        const color = this.color(lab);
        el.classList.add("ent");
        el.setAttribute("data-span", inner.idx);
        el.style.background = color + "33";
        el.style.boxShadow = cover.length > 1 ? `inset 0 -3px 0 ${this.color(cover[cover.length - 1].sp.label)}` : "";
        if (inner.idx === this.selected) el.classList.add("sel-ent");
        for (const c of cover) if (c.sp.end === b - 1) {
          el.classList.add("ent-end");
          el.setAttribute("data-label", Array.isArray(c.sp.label) ? c.sp.label.join("+") : c.sp.label);
          el.style.setProperty("--pl-tag", this.color(Array.isArray(c.sp.label) ? c.sp.label[0] : c.sp.label));
        }
      }
      if (sugg.some((sp) => sp.start <= a && sp.end >= b - 1)) el.classList.add("sugg");
      if (rg && a >= rg[0] && b - 1 <= rg[1]) el.classList.add("kbsel");
      if (this.kb && a === this.kb.caret && !rg) el.classList.add("caret");
      frag.append(el);
    }
    this.textEl.replaceChildren(frag);
  }

  key(e) {
    const k = e.key;
    if (!this.textEl || e.ctrlKey && !k.startsWith("Arrow")) return false;
    const text = this.view.text;
    const l = this.app.labelForKey(e, this.q);
    if (l && !e.shiftKey) { this.mark(l.name); return true; }
    if (k === "ArrowLeft" || k === "ArrowRight") {
      const kb = this.kb || { anchor: 0, caret: 0 };
      let c = kb.caret;
      const dir = k === "ArrowLeft" ? -1 : 1;
      if (e.ctrlKey || e.altKey) { // by word
        c += dir;
        while (c > 0 && c < text.length && !(/\s/.test(text[c - 1]) !== /\s/.test(text[c]))) c += dir;
      } else c += dir;
      c = clamp(c, 0, text.length);
      this.kb = { anchor: e.shiftKey ? kb.anchor : c, caret: c };
      this.selected = -1;
      this.renderText();
      return true;
    }
    if (k === "Escape") { this.kb = null; this.selected = -1; this.armed = null; this.renderText(); this.refresh(); return true; }
    if ((k === "Delete" || k === "Backspace") && this.selected >= 0) {
      const sp = this.model.spans[this.selected];
      this.app.change((ms) => {
        ms[this.qi].spans.splice(this.selected, 1);
        const rq = this.app.relationTool;
        if (rq) ms[rq.qi].rels = ms[rq.qi].rels.filter((r) =>
          !(r.from[0] === sp.start && r.from[1] === sp.end) && !(r.to[0] === sp.start && r.to[1] === sp.end));
      });
      this.selected = -1; this.renderText(); this.refresh(); this.app.relationTool && this.app.relationTool.refresh();
      return true;
    }
    if (k === "Tab" && this.app.tools.length === 1 && this.model.spans.length) {
      this.selected = (this.selected + (e.shiftKey ? -1 : 1) + this.model.spans.length) % this.model.spans.length;
      this.renderText(); this.refresh(); return true;
    }
    return false;
  }

  refresh() {
    this.renderText();
    this.labelList.replaceChildren(...this.labels().map((l) =>
      h("div", { class: `pl-choice${this.armed === l.name ? " current" : ""}`, "data-label": l.name, onclick: () => this.mark(l.name) },
        h("span", { class: "sw", style: `background:${l.color}` }), h("span", { class: "nm" }, l.name),
        l.hotkey ? h("span", { class: "pl-kbd" }, l.hotkey) : null)));
    const text = this.view ? this.view.text : [];
    const rows = this.model.spans.map((sp, i) => h("div", { class: `pl-list-row${i === this.selected ? " on" : ""}`,
      "data-role": "span-row", onclick: () => { this.selected = i; this.refresh(); } },
    h("span", { class: "nm" }, `${text.slice(sp.start, sp.end + 1).join("")}`),
    h("span", { class: "pl-badge" }, Array.isArray(sp.label) ? sp.label.join("+") : sp.label)));
    if (!rows.length) rows.push(h("div", { class: "pl-suggest" }, "Select text with the mouse (or Shift+arrows), then press a label key."));
    const sg = this.suggestion;
    if (sg && (sg.spans || []).length) rows.push(h("div", { class: "pl-suggest" },
      `Suggestion: ${sg.spans.length} span(s) (dashed) — `, h("span", { class: "pl-kbd" }, "A"), " to accept"));
    this.list.replaceChildren(...rows);
  }
}

function toggle(cur, name) {
  const arr = Array.isArray(cur) ? cur : (cur ? [cur] : []);
  return arr.includes(name) ? arr.filter((x) => x !== name) : [...arr, name];
}

class RelationTool extends Tool {
  constructor(...a) {
    super(...a);
    this.linking = null;
    this.selected = -1;
    app_ref(this);
    this.refresh();
  }
  get spanTool() { return this.app.tools.find((t) => t instanceof SpanTool); }
  start() {
    const st = this.spanTool;
    if (!st || st.selected < 0) { this.app.flash("Select an entity first (click it), then press L and click the other one"); return; }
    this.linking = st.selected;
    this.app.flash("Click the entity to link to (Esc cancels)");
  }
  linkTo(idx) {
    const st = this.spanTool;
    const a = st.model.spans[this.linking], b = st.model.spans[idx];
    this.linking = null;
    if (!a || !b || a === b) return;
    const label = this.current || (this.labels()[0] && this.labels()[0].name);
    const pos = (sp) => {
      const el = st.textEl.querySelector(`[data-span="${st.model.spans.indexOf(sp)}"]`);
      return el ? [Math.round(el.offsetLeft), Math.round(el.offsetTop)] : [0, 0];
    };
    this.app.change((ms) => { ms[this.qi].rels.push({ from: [a.start, a.end, ...pos(a)], to: [b.start, b.end, ...pos(b)], label }); });
    this.selected = this.model.rels.length - 1;
    this.refresh();
  }
  globalKey(e) {
    if (e.key === "l" || e.key === "L") { this.start(); return true; }
    if (e.key === "Escape" && this.linking !== null) { this.linking = null; return true; }
    return false;
  }
  key(e) {
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.current = l.name;
      if (this.selected >= 0) { const r = this.model.rels[this.selected]; this.app.change(() => { r.label = l.name; }); }
      this.refresh(); return true;
    }
    if ((e.key === "Delete" || e.key === "Backspace") && this.selected >= 0) {
      this.app.change((ms) => { ms[this.qi].rels.splice(this.selected, 1); });
      this.selected = -1; this.refresh(); return true;
    }
    return this.globalKey(e);
  }
  refresh() {
    const st = this.spanTool;
    const text = st && st.view ? st.view.text : [];
    const t = (r) => text.slice(r[0], r[1] + 1).join("");
    this.body.replaceChildren(
      ...this.labels().map((l) => h("div", { class: `pl-choice${this.current === l.name ? " current" : ""}`,
        onclick: () => { this.current = l.name; this.refresh(); } },
      h("span", { class: "sw", style: `background:${l.color}` }), h("span", { class: "nm" }, l.name),
      l.hotkey ? h("span", { class: "pl-kbd" }, l.hotkey) : null)),
      ...this.model.rels.map((r, i) => h("div", { class: `pl-list-row${i === this.selected ? " on" : ""}`, "data-role": "relation-row",
        onclick: () => { this.selected = i; this.refresh(); } },
      h("span", { class: "nm" }, `${t(r.from)} → ${t(r.to)}`), h("span", { class: "pl-badge" }, r.label))),
      h("div", { class: "pl-suggest" }, "Click an entity, press ", h("span", { class: "pl-kbd" }, "L"), ", click the other."));
  }
}
function app_ref(tool) { tool.app.relationTool = tool; }

// ------------------------------------------------------------------ audio segments

class SegmentTool extends Tool {
  constructor(...a) {
    super(...a);
    this.selected = null;
    this.list = h("div");
    this.labelList = h("div", { style: "margin-bottom:6px" });
    this.body.append(this.labelList, this.list);
    this.refresh();
    this.onContentReady(this.q.bind || "source");
  }
  get view() { return this.app.contentViews[this.q.bind || "source"]; }
  onContentReady(key) {
    const v = this.view;
    if (key !== (this.q.bind || "source") || !v || !v.ready || v.failed || v.wave) return;
    const wave = h("div", { class: "pl-wave", "data-role": "waveform" });
    const canvas = h("canvas");
    wave.append(canvas);
    v.wrap.append(wave);
    v.wave = wave;
    this.wave = wave;
    requestAnimationFrame(() => {
      const r = wave.getBoundingClientRect();
      canvas.width = Math.max(200, Math.round(r.width)); canvas.height = Math.round(r.height);
      drawWave(canvas, v.entry.buffer);
      this.drawRegions();
    });
    wave.addEventListener("pointerdown", (e) => this.down(e));
    if (v.player) {
      const head = h("div", { class: "pl-playhead" });
      wave.append(head);
      v.player.addEventListener("timeupdate", () => {
        head.style.left = `${(100 * v.player.currentTime) / (v.duration || 1)}%`;
        if (this.stopAt && v.player.currentTime >= this.stopAt) { v.player.pause(); this.stopAt = null; }
      });
    }
  }
  timeAt(e) {
    const r = this.wave.getBoundingClientRect();
    return clamp(((e.clientX - r.left) / r.width) * (this.view.duration || 0), 0, this.view.duration || 0);
  }
  down(e) {
    if (e.button !== 0) return;
    const reg = e.target.closest(".pl-region");
    if (reg) { this.select(reg.getAttribute("data-id"), true); return; }
    const t0 = this.timeAt(e);
    const ghost = h("div", { class: "pl-region", style: "background:#1a73e8;border-color:#1a73e8" });
    this.wave.append(ghost);
    const move = (ev) => {
      const t1 = this.timeAt(ev), d = this.view.duration || 1;
      ghost.style.left = `${(100 * Math.min(t0, t1)) / d}%`;
      ghost.style.width = `${(100 * Math.abs(t1 - t0)) / d}%`;
    };
    const up = (ev) => {
      window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up);
      ghost.remove();
      const t1 = this.timeAt(ev);
      if (Math.abs(t1 - t0) < 0.05) { const p = this.view.player; if (p) p.currentTime = t0; return; }
      const label = this.current || (this.labels()[0] && this.labels()[0].name) || null;
      const seg = { id: "wavesurfer_" + uid().replace(/-/g, "").slice(0, 11), start: Math.min(t0, t1), end: Math.max(t0, t1),
        label: this.q.multi && label ? [label] : label, text: this.q.text_title ? "" : undefined };
      this.app.change((ms) => { ms[this.qi].segs.push(seg); ms[this.qi].segs.sort((x, y) => x.start - y.start); });
      this.select(seg.id, false);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }
  select(id, play) {
    this.selected = id;
    const seg = this.model.segs.find((x) => x.id === id);
    const p = this.view && this.view.player;
    if (play && seg && p) { p.currentTime = seg.start; this.stopAt = seg.end; p.play().catch(() => {}); }
    this.drawRegions(); this.refresh();
  }
  drawRegions() {
    if (!this.wave) return;
    this.wave.querySelectorAll(".pl-region").forEach((x) => x.remove());
    const d = this.view.duration || 1;
    for (const sg of this.model.segs) {
      const c = this.color(Array.isArray(sg.label) ? sg.label[0] : sg.label);
      this.wave.append(h("div", { class: `pl-region${sg.id === this.selected ? " selected" : ""}`, "data-id": sg.id,
        style: `left:${(100 * sg.start) / d}%;width:${(100 * (sg.end - sg.start)) / d}%;background:${c};border-color:${c}` }));
    }
  }
  key(e) {
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.current = l.name;
      const sg = this.model.segs.find((x) => x.id === this.selected);
      if (sg) this.app.change(() => { sg.label = this.q.multi ? toggle(sg.label, l.name) : l.name; });
      this.drawRegions(); this.refresh(); return true;
    }
    if ((e.key === "Delete" || e.key === "Backspace") && this.selected) {
      const id = this.selected;
      this.app.change((ms) => { ms[this.qi].segs = ms[this.qi].segs.filter((x) => x.id !== id); });
      this.selected = null; this.drawRegions(); this.refresh(); return true;
    }
    return this.globalKey(e);
  }
  globalKey(e) {
    const p = this.view && this.view.player;
    if (e.key === " " && p) { if (p.paused) p.play().catch(() => {}); else p.pause(); return true; }
    return false;
  }
  refresh() {
    this.labelList.replaceChildren(...this.labels().map((l) =>
      h("div", { class: `pl-choice${this.current === l.name ? " current" : ""}`, onclick: () => { this.current = l.name; this.refresh(); } },
        h("span", { class: "sw", style: `background:${l.color}` }), h("span", { class: "nm" }, l.name),
        l.hotkey ? h("span", { class: "pl-kbd" }, l.hotkey) : null)));
    const rows = this.model.segs.map((sg) => {
      const row = h("div", { class: `pl-list-row${sg.id === this.selected ? " on" : ""}`, "data-role": "segment-row",
        onclick: (e) => { if (e.target.tagName !== "INPUT") this.select(sg.id, true); } },
      h("span", { class: "nm", style: "flex:none" }, `${sg.start.toFixed(2)}–${sg.end.toFixed(2)} s`),
      sg.label ? h("span", { class: "pl-badge" }, Array.isArray(sg.label) ? sg.label.join("+") : sg.label) : null);
      if (this.q.text_title) {
        const input = h("input", { type: "text", placeholder: "transcript", value: sg.text || "" });
        input.addEventListener("change", () => { const v = input.value; this.app.change(() => { sg.text = v; }); });
        row.append(input);
      }
      return row;
    });
    if (!rows.length) rows.push(h("div", { class: "pl-suggest" }, "Drag on the waveform to mark a segment; click one to play it."));
    this.list.replaceChildren(...rows);
  }
}

function drawWave(canvas, buffer) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, hh = canvas.height;
  ctx.clearRect(0, 0, w, hh);
  if (!buffer) return;
  const data = buffer.getChannelData(0);
  const step = Math.max(1, Math.floor(data.length / w));
  ctx.fillStyle = "#5f6368";
  for (let x = 0; x < w; x++) {
    let lo = 1, hi = -1;
    for (let i = x * step; i < (x + 1) * step && i < data.length; i++) { const v = data[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    if (hi < lo) continue;
    ctx.fillRect(x, ((1 - hi) / 2) * hh, 1, Math.max(1, ((hi - lo) / 2) * hh));
  }
}

// ------------------------------------------------------------------------------------------ anywidget

export default {
  render({ model, el }) {
    const app = new Labeler(model, el);
    el.__plLabeler = app; // tests and benchmarks read the labeler's state through the element
    return () => app.destroy();
  },
};
