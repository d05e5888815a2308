// @ts-check
// Small DOM and value helpers: element builders, a patch that keeps unchanged nodes, ids.

// Jupyter's cross-site check for cookie-authenticated writes: echo its _xsrf cookie in a header
export const xsrfToken = () => {
  const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : '';
};

export const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) {
      continue;
    }
    if (k === 'class') {
      el.className = v;
    } else if (k === 'style') {
      el.style.cssText = v;
    } else if (k.startsWith('on')) {
      el.addEventListener(k.slice(2), v);
    } else {
      el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) {
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  return el;
};
// Puts `nodes` into `container`, keeping what is already there and the same: an unchanged part
// of the labeler is neither laid out nor painted again when the labeler moves on. An element kept
// keeps its own listeners, so use it only where the new ones would do the same (head, footer).
export const patch = (container, nodes) => {
  const old = [...container.childNodes];
  if (old.length !== nodes.length) {
    container.replaceChildren(...nodes);
    return;
  }
  nodes.forEach((node, i) => {
    const was = old[i];
    if (was.isEqualNode(node)) {
      return;
    }
    if (was.nodeType === Node.TEXT_NODE && node.nodeType === Node.TEXT_NODE) {
      was.data = node.data;
      return;
    }
    const sameShell =
      was.nodeType === Node.ELEMENT_NODE &&
      node.nodeType === Node.ELEMENT_NODE &&
      was.tagName === node.tagName &&
      was.attributes.length === node.attributes.length &&
      [...node.attributes].every(a => was.getAttribute(a.name) === a.value);
    if (sameShell) {
      patch(was, [...node.childNodes]);
    } else {
      was.replaceWith(node);
    }
  });
};
export const SVG = 'http://www.w3.org/2000/svg';
export const s = (tag, attrs = {}) => {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, v);
  }
  return el;
};
export const uid = () =>
  crypto.randomUUID
    ? crypto.randomUUID()
    : 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, c => {
        const r = (Math.random() * 16) | 0;
        return (c === 'x' ? r : (r & 3) | 8).toString(16);
      });
export const round2 = v => Math.round(v * 100) / 100;
export const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
export const clone = v => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
export const cps = text => Array.from(text || '');
