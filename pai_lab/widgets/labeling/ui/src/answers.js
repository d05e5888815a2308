// @ts-check
// The item model: an editable model per question, read from and sent as simple answers keyed by
// question title; the server alone knows the iTAG results they stand for (Checker.build / simple).
import { round2, uid } from './dom.js';

/** @param {any} q */
export function emptyModel(q) {
  switch (q.type) {
    case 'single':
      return { value: null };
    case 'multi':
      return { values: [] };
    case 'text':
      return { text: '' };
    case 'boxes':
      return { shapes: [] };
    case 'spans':
      return { spans: [] };
    case 'relations':
      return { rels: [] };
    case 'segments':
      return { segs: [] };
  }
  return {};
}

/** @param {number[][]} points */
export function isRect(points) {
  if (points.length !== 4) {
    return false;
  }
  const xs = new Set(points.map(p => p[0])),
    ys = new Set(points.map(p => p[1]));
  return xs.size === 2 && ys.size === 2;
}

/**
 * Each question's editable model from a simple answer keyed by question title (what the server
 * sends for an item's stored answer or suggestion, from Checker.simple).
 * @param {any[]} questions @param {Record<string, any> | null | undefined} answer
 */
export function modelsFromAnswer(questions, answer) {
  return questions.map(q => {
    const a = answer ? answer[q.title] : undefined;
    if (a === undefined || a === null) {
      return emptyModel(q);
    }
    const text = (/** @type {any} */ o) => (q.text_title ? (o.text ?? '') : undefined);
    switch (q.type) {
      case 'single':
        return { value: a };
      case 'multi':
        return { values: [...a] };
      case 'text':
        return { text: a || '' };
      case 'boxes':
        return {
          shapes: (a.shapes || []).map((/** @type {any} */ sh) => ({
            id: sh.id || uid(),
            points: sh.points.map((/** @type {number[]} */ p) => [p[0], p[1]]),
            kind: isRect(sh.points) ? 'rect' : 'polygon',
            label: sh.label ?? null,
            text: text(sh)
          }))
        };
      case 'spans':
        return {
          spans: (a.spans || []).map((/** @type {any} */ o) => ({ start: o.start, end: o.end, label: o.label }))
        };
      case 'relations':
        return {
          rels: a.map((/** @type {any} */ r) => ({
            from: [r.from.start, r.from.end],
            to: [r.to.start, r.to.end],
            label: r.label
          }))
        };
      case 'segments':
        return {
          segs: (a.segments || []).map((/** @type {any} */ o) => ({
            id: o.id,
            start: o.start,
            end: o.end,
            label: o.label ?? null,
            text: text(o)
          })),
          duration: a.duration || 0
        };
    }
    return emptyModel(q);
  });
}

/**
 * The answer to send: a simple answer keyed by question title, which the server alone turns into
 * iTAG results (Checker.build). Returns {answer} or {missing: question, why} when a required
 * answer is absent, so the page can say what to do before moving on.
 * @param {any[]} questions @param {any[]} models
 * @param {{ sizeOf: (key: string) => any, durationOf: (key: string) => number | undefined }} ctx
 * @returns {{ answer?: Record<string, any>, missing?: any, why?: string }}
 */
export function answerFromModels(questions, models, ctx) {
  /** @type {Record<string, any>} */
  const answer = {};
  const has = (/** @type {any} */ label) =>
    label !== null && label !== undefined && !(Array.isArray(label) && !label.length);
  for (let qi = 0; qi < questions.length; qi++) {
    const q = questions[qi],
      m = models[qi];
    if (q.type === 'single') {
      if (m.value === null || m.value === undefined) {
        if (q.required) {
          return { missing: q };
        }
        continue;
      }
      answer[q.title] = m.value;
    } else if (q.type === 'multi') {
      if (!m.values.length && q.required) {
        return { missing: q };
      }
      if (m.values.length) {
        answer[q.title] = [...m.values];
      }
    } else if (q.type === 'text') {
      if (!m.text.trim() && q.required) {
        return { missing: q };
      }
      if (m.text.trim()) {
        answer[q.title] = m.text;
      }
    } else if (q.type === 'boxes') {
      const size = ctx.sizeOf(q.bind || 'source');
      if (!size) {
        return { missing: q, why: 'the image did not load' };
      }
      if (!q.text_title && m.shapes.some((/** @type {any} */ sh) => !has(sh.label))) {
        return { missing: q, why: 'a box has no label: select it and press a label key' };
      }
      answer[q.title] = {
        width: size.width,
        height: size.height,
        shapes: m.shapes.map((/** @type {any} */ sh) => ({
          id: sh.id,
          points: sh.points.map((/** @type {number[]} */ p) => [round2(p[0]), round2(p[1])]),
          label: has(sh.label) ? sh.label : null,
          ...(q.text_title ? { text: sh.text || '' } : {})
        }))
      };
    } else if (q.type === 'spans') {
      answer[q.title] = {
        spans: m.spans.map((/** @type {any} */ sp) => ({ start: sp.start, end: sp.end, label: sp.label })),
        empty: m.spans.length === 0
      };
    } else if (q.type === 'relations') {
      const end = (/** @type {number[]} */ r) => ({ start: r[0], end: r[1], x: r[2] || 0, y: r[3] || 0 });
      answer[q.title] = m.rels.map((/** @type {any} */ r) => ({ from: end(r.from), to: end(r.to), label: r.label }));
    } else if (q.type === 'segments') {
      answer[q.title] = {
        duration: round2(ctx.durationOf(q.bind || 'source') || m.duration || 0),
        segments: m.segs.map((/** @type {any} */ sg) => ({
          id: sg.id,
          start: round2(sg.start),
          end: round2(sg.end),
          label: sg.label ?? null,
          ...(q.text_title ? { text: sg.text || '' } : {})
        })),
        empty: m.segs.length === 0
      };
    }
  }
  return { answer };
}
