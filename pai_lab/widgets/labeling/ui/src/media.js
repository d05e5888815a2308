// @ts-check
import { MEDIA_FETCHES } from './constants.js';

// Fetches an item's media straight from the server (thumbnails sized to the view) or, when the
// page cannot reach it, through the kernel. Two tiers: the bytes of many items ahead (small, so
// the server prepares them while the labeler looks at the current one), and decoded images for
// the next few (a few MB each once decoded).
export class MediaCache {
  constructor(app) {
    this.app = app;
    this.entries = new Map();
    this.queue = []; // entries waiting for a fetch slot, first asked first fetched
    this.active = 0;
  }

  key(seq, field, kind) {
    return `${seq}|${field}|${kind}`;
  }

  // The entry whose bytes are being fetched. `urgent` (the item on screen) starts at once;
  // the others wait in line, a few fetches at a time, so the next item is never starved by far ones.
  bytes(item, field, kind, urgent = false) {
    const k = this.key(item.seq, field, kind);
    let e = this.entries.get(k);
    if (!e) {
      e = { key: k, seq: item.seq, started: false, promise: null };
      e.fetched = new Promise(resolve => {
        e.start = () => {
          e.started = true;
          this.active += 1;
          this.fetchBytes(item, field, kind)
            .then(
              data => resolve({ data }),
              error => resolve({ error })
            )
            .then(() => {
              this.active -= 1;
              this.pump();
            });
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
      e.promise = e.fetched
        .then(({ data, error }) => {
          if (error) {
            throw error;
          }
          return this.decode(kind, data);
        })
        .then(
          r => Object.assign(e, r, { done: true }),
          err => Object.assign(e, { error: String((err && err.message) || err), done: true })
        );
    }
    return e;
  }

  pump() {
    while (this.active < MEDIA_FETCHES && this.queue.length) {
      this.queue.shift().start();
    }
  }

  // the media's bytes, from the server (images sized to the view) or through the kernel
  async fetchBytes(item, field, kind) {
    const value = item.data[field];
    if (typeof value !== 'string' || !value) {
      throw new Error(`the item has no ${field} to show`);
    }
    const app = this.app;
    const box = kind === 'image' ? app.viewSize() : null;
    let blob,
      width = null,
      height = null;
    const direct = await app.directBase();
    if (direct) {
      const params = new URLSearchParams({ key: field });
      if (box) {
        params.set('w', box.w);
        params.set('h', box.h);
      }
      const resp = await fetch(`${direct}/items/${item.seq}/media?${params}`, { credentials: 'same-origin' });
      if (!resp.ok) {
        let msg = `${resp.status} ${resp.statusText}`;
        try {
          msg = (await resp.json()).error.message;
        } catch {
          /* keep the status */
        }
        throw new Error(msg);
      }
      width = +resp.headers.get('X-Original-Width') || null;
      height = +resp.headers.get('X-Original-Height') || null;
      blob = await resp.blob();
    } else {
      const r = await this.viaKernel(item.seq, field, box);
      blob = r.blob;
      width = r.width;
      height = r.height;
    }
    return { blob, width, height };
  }

  // an <img> decoded and ready to paint, or decoded audio samples, or a URL for a player
  async decode(kind, { blob, width, height }) {
    const url = URL.createObjectURL(blob);
    if (kind === 'image') {
      const img = new Image();
      img.src = url;
      img.draggable = false;
      try {
        await img.decode();
      } catch {
        URL.revokeObjectURL(url);
        throw new Error('the file is not an image the browser can decode (corrupt or an unsupported format)');
      }
      return { url, img, width: width || img.naturalWidth, height: height || img.naturalHeight };
    }
    if (kind === 'audio-data') {
      // decoded samples for a waveform
      const ctx = new (window.OfflineAudioContext || /** @type {any} */ (window).webkitOfflineAudioContext)(
        1,
        44100,
        44100
      );
      let buffer;
      try {
        buffer = await ctx.decodeAudioData(await blob.arrayBuffer());
      } catch {
        URL.revokeObjectURL(url);
        throw new Error('this audio cannot be decoded here (unsupported codec or a damaged file)');
      }
      return { url, buffer, duration: buffer.duration };
    }
    return { url };
  }

  async viaKernel(seq, field, box) {
    const [reply, buffers] = await this.app.transport.invoke('media', {
      seq,
      key: field,
      w: box ? box.w : 0,
      h: box ? box.h : 0
    });
    if (!reply.ok) {
      throw new Error(reply.error);
    }
    return { blob: new Blob([buffers[0]], { type: reply.mime }), width: reply.width, height: reply.height };
  }

  // keep bytes for the items ahead and decoded media only around the current one
  trim(items, index, ahead) {
    const keep = new Set(items.slice(Math.max(0, index - 2), index + ahead + 2).map(i => i.seq));
    for (const [k, e] of this.entries) {
      if (!keep.has(e.seq)) {
        if (e.url) {
          URL.revokeObjectURL(e.url);
        }
        this.entries.delete(k);
      }
    }
    this.queue = this.queue.filter(e => this.entries.has(e.key));
  }

  clear() {
    for (const e of this.entries.values()) {
      if (e.url) {
        URL.revokeObjectURL(e.url);
      }
    }
    this.entries.clear();
    this.queue = [];
  }
}
