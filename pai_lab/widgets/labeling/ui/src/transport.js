// @ts-check
// How the page talks to the kernel and to the server.
//
// The kernel: every call is a command with a request id, answered once (anywidget's command
// protocol, the same messages as its experimental `invoke`); the kernel has one handler per command.
// The server: an answer goes straight there when this page may store it (it holds the package
// under the same login), so the next item never waits on the kernel; else through the kernel.
// An answer carries a client-made id, so sending it again (retry) never stores it twice.
import { uid, xsrfToken } from './dom.js';

const COMMAND = 'anywidget-command';
const RESPONSE = 'anywidget-command-response';
const RETRY_AFTER_MS = 10000;

/**
 * @typedef {{ on: Function, off: Function, send: Function, get: (name: string) => any }} Model
 * @typedef {{ ok: boolean, error?: string, [key: string]: any }} Reply
 * @typedef {{ seq: number, client_id: string, stage: string, answer?: any, skip?: string | null }} AnswerMsg
 * @typedef {{ seq: number, msg: AnswerMsg, sent: number }} Pending
 * @typedef {{ stored: (seq: number, msg: AnswerMsg, ok: boolean, error?: string, progress?: object) => void,
 *             failed: (error: string) => void, package: () => any }} Owner
 */

/** Commands to the kernel: `invoke(name, msg)` resolves with the kernel's reply and its buffers. */
export class Commands {
  /** @param {Model} model */
  constructor(model) {
    this.model = model;
    /** @type {Map<string, {resolve: Function, reject: Function, timer: any}>} */
    this.waiting = new Map();
    this.onMsg = (/** @type {any} */ msg, /** @type {DataView[]} */ buffers) => this.received(msg, buffers);
    model.on('msg:custom', this.onMsg);
  }

  /**
   * @param {string} name
   * @param {object} [msg]
   * @param {{ buffers?: ArrayBuffer[], timeout?: number }} [options]
   * @returns {Promise<[Reply, DataView[]]>}
   */
  invoke(name, msg = {}, { buffers = [], timeout = 60000 } = {}) {
    const id = uid();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiting.delete(id)) {
          reject(new Error(`the kernel did not answer ${name} in time`));
        }
      }, timeout);
      this.waiting.set(id, { resolve, reject, timer });
      this.model.send({ id, kind: COMMAND, name, msg }, undefined, buffers);
    });
  }

  /** @param {any} msg @param {DataView[]} buffers */
  received(msg, buffers) {
    if (!msg || msg.kind !== RESPONSE) {
      return;
    }
    const w = this.waiting.get(msg.id);
    if (!w) {
      return;
    }
    this.waiting.delete(msg.id);
    clearTimeout(w.timer);
    w.resolve([msg.response, buffers || []]);
  }

  close() {
    this.model.off('msg:custom', this.onMsg);
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
    }
    this.waiting.clear();
  }
}

/** Answers on their way to the server, and the commands that must wait for them. */
export class Transport {
  /** @param {Model} model @param {Owner} owner */
  constructor(model, owner) {
    this.model = model;
    this.owner = owner;
    this.commands = new Commands(model);
    /** @type {Map<string, Pending>} answers not yet acknowledged, by client id */
    this.pending = new Map();
    /** @type {Map<number, Promise<void>>} the last direct post of each item's answer (kept in order) */
    this.posting = new Map();
    /** @type {Array<() => void>} commands (submit, verdicts) waiting for the answers before them */
    this.afterSaved = [];
    /** @type {string | null | undefined} the API base the page reaches itself; undefined until probed */
    this.direct = undefined;
    /** @type {string | null} who the page is logged in as */
    this.me = null;
    this.probe = null;
  }

  close() {
    this.commands.close();
  }

  /** @param {string} name @param {object} [msg] @param {{ buffers?: ArrayBuffer[], timeout?: number }} [options] */
  invoke(name, msg, options) {
    return this.commands.invoke(name, msg, options);
  }

  // The page talks to the server directly when it is the same pai_lab server the kernel uses
  // (checked once by asking it for the task, and who the page is); otherwise media and answers
  // come through the kernel.
  /** @param {string} taskId @returns {Promise<string | null>} */
  directBase(taskId) {
    if (this.direct !== undefined) {
      return Promise.resolve(this.direct);
    }
    if (!this.probe) {
      this.probe = (async () => {
        const path = this.model.get('api_path');
        if (!path || this.model.get('media_via_kernel')) {
          return null;
        }
        let base = '/';
        const cfg = document.getElementById('jupyter-config-data');
        if (cfg) {
          try {
            base = JSON.parse(cfg.textContent).baseUrl || '/';
          } catch {
            /* default */
          }
        }
        const url = base.replace(/\/$/, '') + '/' + path.replace(/^\//, '');
        try {
          const r = await fetch(url, { credentials: 'same-origin' });
          if (!r.ok || (await r.json()).id !== taskId) {
            return null;
          }
          const me = await fetch(url.slice(0, url.indexOf('/workspaces/')) + '/me', { credentials: 'same-origin' });
          this.me = me.ok ? (await me.json()).username : null;
          return url;
        } catch {
          /* not reachable from the page */
        }
        return null;
      })().then(v => (this.direct = v));
    }
    return this.probe;
  }

  // The API base for direct answers, known once the probe and the login check are done.
  answersBase() {
    const pkg = this.owner.package();
    return this.direct && this.me && pkg && pkg.holder === this.me ? this.direct : null;
  }

  /** @param {AnswerMsg} msg */
  answer(msg) {
    const p = { seq: msg.seq, msg, sent: performance.now() };
    this.pending.set(msg.client_id, p);
    this.transmit(p);
  }

  // Posts of one item's answers go one after another, so the last one given wins.
  /** @param {Pending} p */
  transmit(p) {
    // until the probe says which way answers go, wait for it: one item's answers never take two ways
    if (this.direct === undefined) {
      if (this.probe) {
        this.probe.then(() => this.transmit(p));
      } else {
        setTimeout(() => this.transmit(p), 50);
      }
      return;
    }
    const base = this.answersBase();
    if (!base) {
      this.viaKernel(p);
      return;
    }
    const { seq, client_id, stage, answer, skip } = p.msg;
    const body = JSON.stringify({
      item: seq,
      client_id,
      stage,
      answer: skip ? null : (answer ?? null),
      skip: skip ?? null
    });
    const post = () =>
      fetch(`${base}/answers`, {
        method: 'POST',
        credentials: 'same-origin',
        body,
        headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrfToken() }
      }).then(
        async resp => {
          let said = null;
          try {
            said = await resp.json();
          } catch {
            /* not one of our replies */
          }
          if (resp.ok) {
            this.acked(client_id, true, undefined, said && said.progress);
            return;
          }
          const error = said && said.error;
          if ((resp.status === 401 || resp.status === 403) && !(error && error.message)) {
            // refused by Jupyter, not by pai_lab (no login cookie, a cross-site check the page cannot
            // pass): from now on answers go through the kernel, this one first
            this.me = null;
            this.viaKernel(p);
            return;
          }
          this.acked(client_id, false, error && error.message ? error.message : `${resp.status} ${resp.statusText}`);
        },
        () => {
          /* not reached the server: stays pending, and is sent again by retry() */
        }
      );
    const chained = (this.posting.get(seq) || Promise.resolve()).then(post);
    this.posting.set(seq, chained);
    chained.then(() => {
      if (this.posting.get(seq) === chained) {
        this.posting.delete(seq);
      }
    });
  }

  /** @param {Pending} p */
  viaKernel(p) {
    this.invoke('answer', p.msg).then(
      ([reply]) => this.acked(p.msg.client_id, reply.ok, reply.error, reply.progress),
      () => {
        /* no reply: stays pending, and is sent again by retry() */
      }
    );
  }

  /** sends again the answers not acknowledged for a while (all of them when `now`) */
  retry(now = false) {
    const t = performance.now();
    for (const p of this.pending.values()) {
      if (now || t - p.sent > RETRY_AFTER_MS) {
        p.sent = t;
        this.transmit(p);
      }
    }
  }

  // The server stored an answer (ok) or refused it (error), told by the kernel or the server.
  /** @param {string} clientId @param {boolean} ok @param {string} [error] @param {object} [progress] */
  acked(clientId, ok, error, progress) {
    const p = this.pending.get(clientId);
    if (!p) {
      return;
    }
    this.pending.delete(clientId);
    this.owner.stored(p.seq, p.msg, ok, error, progress);
    if (!this.pending.size) {
      for (const run of this.afterSaved.splice(0)) {
        run();
      }
    }
  }

  // submit and verdicts go through the kernel; they wait until every answer before them is stored
  /** @param {string} name @param {object} [msg] */
  afterAnswers(name, msg = {}) {
    const run = () =>
      this.invoke(name, msg).then(
        ([reply]) => {
          if (!reply.ok) {
            this.owner.failed(reply.error);
          }
        },
        err => this.owner.failed(String((err && err.message) || err))
      );
    if (!this.pending.size) {
      run();
    } else {
      this.afterSaved.push(run);
    }
  }
}
