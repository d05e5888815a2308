// @ts-check
// A boxes question (detection, OCR): drawing rectangles and polygons on the image with the pointer,
// moving and resizing them, zoom and pan, and the keys; what it shows is box_view.js.
import { clamp, clone, h, round2, uid } from '../dom.js';
import * as boxView from './box_view.js';
import { Tool } from './tool.js';

export class BoxTool extends Tool {
  constructor(...a) {
    super(...a);
    this.mode = (this.q.tools || ['rect', 'polygon'])[0] || 'rect';
    this.selected = null;
    this.draft = null;
    this.currentLabel = null;
    this.list = h('div');
    this.toolbar = h('div', { class: 'pl-tools' });
    this.body.append(this.toolbar, this.list);
    this.refresh();
    this.onContentReady(this.q.bind || 'source');
  }
  get view() {
    return this.app.contentViews[this.q.bind || 'source'];
  }

  restored() {
    if (this.selected && !this.model.shapes.some(x => x.id === this.selected)) {
      this.selected = null;
    }
    this.draft = null;
    this.draw();
  }

  onContentReady(key) {
    if (key !== (this.q.bind || 'source')) {
      return;
    }
    const v = this.view;
    if (!v || !v.svg || v.bound === this) {
      return;
    }
    v.bound = this;
    v.stage.classList.add('drawing');
    v.stage.addEventListener('pointerdown', e => this.down(e));
    v.stage.addEventListener('wheel', e => this.wheel(e), { passive: false });
    this.draw();
  }

  toImage(e) {
    const v = this.view,
      r = v.svg.getBoundingClientRect();
    return [
      clamp(((e.clientX - r.left) / r.width) * v.size.width, 0, v.size.width),
      clamp(((e.clientY - r.top) / r.height) * v.size.height, 0, v.size.height)
    ];
  }

  down(e) {
    const v = this.view;
    if (!v || !v.size) {
      return;
    }
    this.app.setActive(this.qi);
    e.preventDefault();
    if (e.shiftKey || e.button === 1) {
      this.pan(e);
      return;
    }
    if (e.button !== 0) {
      return;
    }
    const p = this.toImage(e);
    const handle = e.target.getAttribute && e.target.getAttribute('data-handle');
    const shapeId = e.target.getAttribute && e.target.getAttribute('data-shape');
    if (this.mode === 'polygon' && this.draft) {
      this.addPoint(p);
      return;
    }
    if (handle !== null && handle !== undefined && this.selected) {
      this.drag(e, 'handle', +handle, p);
      return;
    }
    if (shapeId) {
      this.select(shapeId);
      this.drag(e, 'move', null, p);
      return;
    }
    if (this.mode === 'polygon') {
      this.draft = { points: [p], hover: p };
      this.draw();
      return;
    }
    this.drag(e, 'new', null, p);
  }

  drag(e, kind, handle, start) {
    const v = this.view;
    const shape = this.selected ? this.model.shapes.find(x => x.id === this.selected) : null;
    const before = shape ? clone(shape.points) : null;
    let moved = false;
    const target = v.stage;
    target.setPointerCapture && target.setPointerCapture(e.pointerId);
    const move = ev => {
      const p = this.toImage(ev);
      if (Math.abs(p[0] - start[0]) + Math.abs(p[1] - start[1]) > 1) {
        moved = true;
      }
      if (kind === 'new') {
        this.draft = { rect: [start, p] };
        this.draw();
      } else if (kind === 'move' && shape) {
        const dx = p[0] - start[0],
          dy = p[1] - start[1];
        const xs = before.map(q => q[0]),
          ys = before.map(q => q[1]);
        const ddx = clamp(dx, -Math.min(...xs), v.size.width - Math.max(...xs));
        const ddy = clamp(dy, -Math.min(...ys), v.size.height - Math.max(...ys));
        shape.points = before.map(q => [q[0] + ddx, q[1] + ddy]);
        this.draw();
      } else if (kind === 'handle' && shape) {
        if (shape.kind === 'rect') {
          // the dragged corner follows the pointer, the opposite corner stays
          const opp = before[(handle + 2) % 4];
          shape.points = boxView.rectPoints(opp, p);
        } else {
          shape.points = before.map((q, i) => (i === handle ? p : q));
        }
        this.draw();
      }
    };
    const up = ev => {
      target.removeEventListener('pointermove', move);
      target.removeEventListener('pointerup', up);
      const p = this.toImage(ev);
      if (kind === 'new') {
        this.draft = null;
        const w = Math.abs(p[0] - start[0]),
          hh = Math.abs(p[1] - start[1]);
        if (w >= 2 && hh >= 2) {
          this.addShape('rect', boxView.rectPoints(start, p));
        } else {
          this.selected = null;
          this.draw();
          this.refresh();
        }
      } else if (moved && shape) {
        const after = clone(shape.points);
        shape.points = before;
        this.app.change(() => {
          shape.points = after;
        });
        this.draw();
        this.refresh();
      }
    };
    target.addEventListener('pointermove', move);
    target.addEventListener('pointerup', up);
  }

  pan(e) {
    const v = this.view,
      x0 = e.clientX,
      y0 = e.clientY,
      tx = v.tx,
      ty = v.ty;
    v.stage.classList.add('panning');
    const move = ev => {
      v.tx = tx + ev.clientX - x0;
      v.ty = ty + ev.clientY - y0;
      this.app.applyZoom(v);
    };
    const up = () => {
      v.stage.classList.remove('panning');
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  }

  wheel(e) {
    e.preventDefault();
    this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX, e.clientY);
  }

  zoomAt(factor, cx, cy) {
    const v = this.view;
    if (!v || !v.canvas) {
      return;
    }
    const z = clamp(v.zoom * factor, 1, 16);
    const sr = v.stage.getBoundingClientRect();
    if (cx === undefined) {
      cx = sr.left + sr.width / 2;
      cy = sr.top + sr.height / 2;
    }
    // keep the point under the cursor in place: canvas origin sits at the stage's centred offset
    const cr = v.canvas.getBoundingClientRect();
    const ux = (cx - cr.left) / v.zoom,
      uy = (cy - cr.top) / v.zoom;
    v.tx += (v.zoom - z) * ux;
    v.ty += (v.zoom - z) * uy;
    v.zoom = z;
    if (z === 1) {
      v.tx = 0;
      v.ty = 0;
    }
    this.app.applyZoom(v);
  }

  addPoint(p) {
    const d = this.draft;
    const first = d.points[0];
    const v = this.view,
      tol = ((v.size.width / v.fitW) * 8) / v.zoom;
    if (d.points.length >= 3 && Math.hypot(p[0] - first[0], p[1] - first[1]) < tol) {
      this.closePolygon();
      return;
    }
    d.points.push(p);
    this.draw();
  }

  closePolygon() {
    const d = this.draft;
    this.draft = null;
    if (d && d.points.length >= 3) {
      this.addShape('polygon', d.points);
    } else {
      this.draw();
    }
  }

  addShape(kind, points) {
    const label =
      this.q.text_title && !this.currentLabel
        ? null
        : this.currentLabel || (this.labels()[0] ? this.labels()[0].name : null);
    const shape = {
      id: uid(),
      kind,
      points: points.map(p => [round2(p[0]), round2(p[1])]),
      label: this.q.multi && label ? [label] : label,
      text: this.q.text_title ? '' : undefined
    };
    this.app.change(ms => {
      ms[this.qi].shapes.push(shape);
    });
    this.selected = shape.id;
    this.draw();
    this.refresh();
    if (this.q.text_title) {
      const input = this.list.querySelector(`input[data-shape="${shape.id}"]`);
      if (input) {
        setTimeout(() => input.focus(), 0);
      }
    }
  }

  select(id) {
    this.selected = id;
    this.draw();
    this.refresh();
  }

  setLabel(name) {
    this.currentLabel = name;
    const shape = this.selected && this.model.shapes.find(x => x.id === this.selected);
    if (shape) {
      this.app.change(() => {
        if (this.q.multi) {
          const cur = Array.isArray(shape.label) ? shape.label : shape.label ? [shape.label] : [];
          shape.label = cur.includes(name) ? cur.filter(x => x !== name) : [...cur, name];
        } else {
          shape.label = name;
        }
      });
    }
    this.draw();
    this.refresh();
  }

  key(e) {
    const k = e.key;
    if (e.ctrlKey || e.metaKey) {
      return false;
    }
    if (this.draft && this.draft.points && k === 'Enter') {
      this.closePolygon();
      return true;
    }
    if (k === 'Escape') {
      this.draft = null;
      this.selected = null;
      this.draw();
      this.refresh();
      return true;
    }
    const l = this.app.labelForKey(e, this.q);
    if (l) {
      this.setLabel(l.name);
      return true;
    }
    const tools = this.q.tools || ['rect', 'polygon']; // the same default the tool buttons show
    if (k === 'r' && tools.includes('rect')) {
      this.mode = 'rect';
      this.draft = null;
      this.refresh();
      return true;
    }
    if (k === 'g' && tools.includes('polygon')) {
      this.mode = 'polygon';
      this.refresh();
      return true;
    }
    if ((k === 'Delete' || k === 'Backspace') && this.selected) {
      const id = this.selected;
      this.app.change(ms => {
        ms[this.qi].shapes = ms[this.qi].shapes.filter(x => x.id !== id);
      });
      this.selected = null;
      this.draw();
      this.refresh();
      return true;
    }
    if (k === 'Tab' && this.app.tools.length === 1 && this.model.shapes.length) {
      const ids = this.model.shapes.map(x => x.id);
      const i = ids.indexOf(this.selected);
      this.select(ids[(i + (e.shiftKey ? -1 : 1) + ids.length) % ids.length]);
      return true;
    }
    if (k === '+' || k === '=') {
      this.zoomAt(1.25);
      return true;
    }
    if (k === '-') {
      this.zoomAt(0.8);
      return true;
    }
    if (k === 'f' || k === 'F') {
      const v = this.view;
      if (v) {
        v.zoom = 1;
        v.tx = 0;
        v.ty = 0;
        this.app.applyZoom(v);
      }
      return true;
    }
    if (k.startsWith('Arrow') && this.selected) {
      const shape = this.model.shapes.find(x => x.id === this.selected);
      const step = e.shiftKey ? 10 : 1;
      const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[k];
      const v = this.view;
      this.app.change(() => {
        shape.points = shape.points.map(p => [clamp(p[0] + dx, 0, v.size.width), clamp(p[1] + dy, 0, v.size.height)]);
      });
      this.draw();
      return true;
    }
    if (k === 'Enter' && this.q.text_title && this.selected) {
      const input = this.list.querySelector(`input[data-shape="${this.selected}"]`);
      const shape = this.model.shapes.find(x => x.id === this.selected);
      if (input && shape && !shape.text) {
        input.focus();
        return true;
      }
    }
    return false;
  }

  draw() {
    return boxView.drawShapes(this);
  }

  refresh() {
    return boxView.renderPanel(this);
  }
}
