// @ts-check
import { clamp, h, uid } from '../dom.js';
import { Tool, toggle } from './tool.js';
// ------------------------------------------------------------------ audio segments

export class SegmentTool extends Tool {
  constructor(...a) {
    super(...a);
    this.selected = null;
    this.list = h('div');
    this.labelList = h('div', { style: 'margin-bottom:6px' });
    this.body.append(this.labelList, this.list);
    this.refresh();
    this.onContentReady(this.q.bind || 'source');
  }
  get view() {
    return this.app.contentViews[this.q.bind || 'source'];
  }
  onContentReady(key) {
    const v = this.view;
    if (key !== (this.q.bind || 'source') || !v || !v.ready || v.failed || v.wave) {
      return;
    }
    const wave = h('div', { class: 'pl-wave', 'data-role': 'waveform' });
    const canvas = h('canvas');
    wave.append(canvas);
    v.wrap.append(wave);
    v.wave = wave;
    this.wave = wave;
    requestAnimationFrame(() => {
      const r = wave.getBoundingClientRect();
      canvas.width = Math.max(200, Math.round(r.width));
      canvas.height = Math.round(r.height);
      drawWave(canvas, v.entry.buffer);
      this.drawRegions();
    });
    wave.addEventListener('pointerdown', e => this.down(e));
    if (v.player) {
      const head = h('div', { class: 'pl-playhead' });
      wave.append(head);
      v.player.addEventListener('timeupdate', () => {
        head.style.left = `${(100 * v.player.currentTime) / (v.duration || 1)}%`;
        if (this.stopAt && v.player.currentTime >= this.stopAt) {
          v.player.pause();
          this.stopAt = null;
        }
      });
    }
  }
  timeAt(e) {
    const r = this.wave.getBoundingClientRect();
    return clamp(((e.clientX - r.left) / r.width) * (this.view.duration || 0), 0, this.view.duration || 0);
  }
  down(e) {
    if (e.button !== 0) {
      return;
    }
    const reg = e.target.closest('.pl-region');
    if (reg) {
      this.select(reg.getAttribute('data-id'), true);
      return;
    }
    const t0 = this.timeAt(e);
    const ghost = h('div', { class: 'pl-region', style: 'background:#1a73e8;border-color:#1a73e8' });
    this.wave.append(ghost);
    const move = ev => {
      const t1 = this.timeAt(ev),
        d = this.view.duration || 1;
      ghost.style.left = `${(100 * Math.min(t0, t1)) / d}%`;
      ghost.style.width = `${(100 * Math.abs(t1 - t0)) / d}%`;
    };
    const up = ev => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      ghost.remove();
      const t1 = this.timeAt(ev);
      if (Math.abs(t1 - t0) < 0.05) {
        const p = this.view.player;
        if (p) {
          p.currentTime = t0;
        }
        return;
      }
      const label = this.current || (this.labels()[0] && this.labels()[0].name) || null;
      const seg = {
        id: 'wavesurfer_' + uid().replace(/-/g, '').slice(0, 11),
        start: Math.min(t0, t1),
        end: Math.max(t0, t1),
        label: this.q.multi && label ? [label] : label,
        text: this.q.text_title ? '' : undefined
      };
      this.app.change(ms => {
        ms[this.qi].segs.push(seg);
        ms[this.qi].segs.sort((x, y) => x.start - y.start);
      });
      this.select(seg.id, false);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  }
  select(id, play) {
    this.selected = id;
    const seg = this.model.segs.find(x => x.id === id);
    const p = this.view && this.view.player;
    if (play && seg && p) {
      p.currentTime = seg.start;
      this.stopAt = seg.end;
      p.play().catch(() => {});
    }
    this.drawRegions();
    this.refresh();
  }
  drawRegions() {
    if (!this.wave) {
      return;
    }
    this.wave.querySelectorAll('.pl-region').forEach(x => x.remove());
    const d = this.view.duration || 1;
    for (const sg of this.model.segs) {
      const c = this.color(Array.isArray(sg.label) ? sg.label[0] : sg.label);
      this.wave.append(
        h('div', {
          class: `pl-region${sg.id === this.selected ? ' selected' : ''}`,
          'data-id': sg.id,
          style: `left:${(100 * sg.start) / d}%;width:${(100 * (sg.end - sg.start)) / d}%;background:${c};border-color:${c}`
        })
      );
    }
  }
  key(e) {
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.current = l.name;
      const sg = this.model.segs.find(x => x.id === this.selected);
      if (sg) {
        this.app.change(() => {
          sg.label = this.q.multi ? toggle(sg.label, l.name) : l.name;
        });
      }
      this.drawRegions();
      this.refresh();
      return true;
    }
    if ((e.key === 'Delete' || e.key === 'Backspace') && this.selected) {
      const id = this.selected;
      this.app.change(ms => {
        ms[this.qi].segs = ms[this.qi].segs.filter(x => x.id !== id);
      });
      this.selected = null;
      this.drawRegions();
      this.refresh();
      return true;
    }
    return this.globalKey(e);
  }
  globalKey(e) {
    const p = this.view && this.view.player;
    if (e.key === ' ' && p) {
      if (p.paused) {
        p.play().catch(() => {});
      } else {
        p.pause();
      }
      return true;
    }
    return false;
  }
  refresh() {
    this.labelList.replaceChildren(
      ...this.labels().map(l =>
        h(
          'div',
          {
            class: `pl-choice${this.current === l.name ? ' current' : ''}`,
            onclick: () => {
              this.current = l.name;
              this.refresh();
            }
          },
          h('span', { class: 'sw', style: `background:${l.color}` }),
          h('span', { class: 'nm' }, l.name),
          l.hotkey ? h('span', { class: 'pl-kbd' }, l.hotkey) : null
        )
      )
    );
    const rows = this.model.segs.map(sg => {
      const row = h(
        'div',
        {
          class: `pl-list-row${sg.id === this.selected ? ' on' : ''}`,
          'data-role': 'segment-row',
          onclick: e => {
            if (e.target.tagName !== 'INPUT') {
              this.select(sg.id, true);
            }
          }
        },
        h('span', { class: 'nm', style: 'flex:none' }, `${sg.start.toFixed(2)}–${sg.end.toFixed(2)} s`),
        sg.label ? h('span', { class: 'pl-badge' }, Array.isArray(sg.label) ? sg.label.join('+') : sg.label) : null
      );
      if (this.q.text_title) {
        const input = h('input', { type: 'text', placeholder: 'transcript', value: sg.text || '' });
        input.addEventListener('change', () => {
          const v = input.value;
          this.app.change(() => {
            sg.text = v;
          });
        });
        row.append(input);
      }
      return row;
    });
    if (!rows.length) {
      rows.push(h('div', { class: 'pl-suggest' }, 'Drag on the waveform to mark a segment; click one to play it.'));
    }
    this.list.replaceChildren(...rows);
  }
}

function drawWave(canvas, buffer) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width,
    hh = canvas.height;
  ctx.clearRect(0, 0, w, hh);
  if (!buffer) {
    return;
  }
  const data = buffer.getChannelData(0);
  const step = Math.max(1, Math.floor(data.length / w));
  ctx.fillStyle = '#5f6368';
  for (let x = 0; x < w; x++) {
    let lo = 1,
      hi = -1;
    for (let i = x * step; i < (x + 1) * step && i < data.length; i++) {
      const v = data[i];
      if (v < lo) {
        lo = v;
      }
      if (v > hi) {
        hi = v;
      }
    }
    if (hi < lo) {
      continue;
    }
    ctx.fillRect(x, ((1 - hi) / 2) * hh, 1, Math.max(1, ((hi - lo) / 2) * hh));
  }
}
