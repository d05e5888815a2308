// @ts-check
import { NUMBER_KEYS } from './constants.js';

// Label keys: the task's own hotkeys, else a one-character name (labels "0".."9" keep their
// digit), else the next free number key in order.
export function assignHotkeys(labels) {
  const taken = new Set(labels.filter(l => l.hotkey).map(l => l.hotkey.toLowerCase()));
  for (const l of labels) {
    if (!l.hotkey && l.name.length === 1 && !taken.has(l.name.toLowerCase()) && /[0-9a-z]/i.test(l.name)) {
      l.hotkey = l.name.toLowerCase();
      taken.add(l.hotkey);
    }
  }
  const free = NUMBER_KEYS.filter(k => !taken.has(k));
  for (const l of labels) {
    if (!l.hotkey && free.length) {
      l.hotkey = free.shift();
    }
  }
  return labels;
}
