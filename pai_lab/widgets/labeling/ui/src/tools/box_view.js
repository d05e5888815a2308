// @ts-check
// What a boxes question shows: its shapes drawn over the image (with the suggestion, the selected
// shape's handles and the shape being drawn), and its side panel (drawing tools, labels, one row per
// shape with its transcription). The pointer and key handling that changes them is box.js.
import { h, s } from '../dom.js';

/** @typedef {import("./box.js").BoxTool} BoxTool */

/** @param {BoxTool} tool */
export function drawShapes(tool) {
  const v = tool.view;
  if (!v || !v.svg) {
    return;
  }
  const svg = v.svg;
  svg.replaceChildren();
  const scale = v.size.width / (v.fitW || v.size.width);
  const sugg = tool.suggestion;
  if (sugg && !tool.model.shapes.length) {
    for (const sh of sugg.shapes || []) {
      svg.append(
        s('polygon', {
          class: 'pl-shape suggestion',
          points: sh.points.map(p => p.join(',')).join(' '),
          stroke: tool.color(Array.isArray(sh.label) ? sh.label[0] : sh.label),
          fill: 'none'
        })
      );
    }
  }
  for (const sh of tool.model.shapes) {
    const name = Array.isArray(sh.label) ? sh.label.join(', ') : sh.label || '';
    const color = tool.color(Array.isArray(sh.label) ? sh.label[0] : sh.label);
    const poly = s('polygon', {
      class: `pl-shape${sh.id === tool.selected ? ' selected' : ''}`,
      'data-shape': sh.id,
      points: sh.points.map(p => p.join(',')).join(' '),
      stroke: color,
      fill: color
    });
    svg.append(poly);
    const tag = s('text', {
      class: 'pl-shape-label',
      x: sh.points[0][0] + 2 * scale,
      y: Math.max(sh.points[0][1] - 4 * scale, 12 * scale),
      fill: color,
      'font-size': 12 * scale
    });
    tag.textContent = [name, sh.text].filter(Boolean).join(' · ');
    tag.style.strokeWidth = `${3 * scale}px`;
    svg.append(tag);
    if (sh.id === tool.selected) {
      sh.points.forEach((p, i) =>
        svg.append(
          s('circle', {
            class: 'pl-handle',
            cx: p[0],
            cy: p[1],
            r: 5 * scale,
            stroke: color,
            'data-handle': i
          })
        )
      );
    }
  }
  const d = tool.draft;
  if (d && d.rect) {
    svg.append(
      s('polygon', {
        class: 'pl-shape',
        points: rectPoints(...d.rect)
          .map(p => p.join(','))
          .join(' '),
        stroke: '#1a73e8',
        fill: '#1a73e8'
      })
    );
  }
  if (d && d.points) {
    svg.append(
      s('polyline', {
        class: 'pl-shape',
        points: d.points.map(p => p.join(',')).join(' '),
        stroke: '#1a73e8',
        fill: 'none'
      })
    );
  }
}

/** @param {BoxTool} tool */
export function renderPanel(tool) {
  const tools = tool.q.tools || ['rect', 'polygon'];
  tool.toolbar.replaceChildren(
    ...[
      tools.includes('rect')
        ? h(
            'button',
            {
              class: `pl-btn${tool.mode === 'rect' ? ' on' : ''}`,
              onclick: () => {
                tool.mode = 'rect';
                tool.refresh();
              }
            },
            '▭ Rectangle',
            h('span', { class: 'pl-kbd' }, 'R')
          )
        : null,
      tools.includes('polygon')
        ? h(
            'button',
            {
              class: `pl-btn${tool.mode === 'polygon' ? ' on' : ''}`,
              onclick: () => {
                tool.mode = 'polygon';
                tool.refresh();
              }
            },
            '⬠ Polygon',
            h('span', { class: 'pl-kbd' }, 'G')
          )
        : null
    ].filter(Boolean)
  );
  const rows = [];
  const labels = tool.labels();
  if (labels.length) {
    rows.push(
      h(
        'div',
        { style: 'margin-bottom:6px' },
        ...labels.map(l =>
          h(
            'div',
            {
              class: `pl-choice${tool.currentLabel === l.name ? ' current' : ''}`,
              'data-label': l.name,
              onclick: () => tool.setLabel(l.name)
            },
            h('span', { class: 'sw', style: `background:${l.color}` }),
            h('span', { class: 'nm' }, l.name),
            l.hotkey ? h('span', { class: 'pl-kbd' }, l.hotkey) : null
          )
        )
      )
    );
  }
  tool.model.shapes.forEach((sh, i) => {
    const name = Array.isArray(sh.label) ? sh.label.join(', ') : sh.label || '(no label)';
    const row = h(
      'div',
      {
        class: `pl-list-row${sh.id === tool.selected ? ' on' : ''}`,
        'data-role': 'shape-row',
        onclick: e => {
          if (e.target.tagName !== 'INPUT') {
            tool.select(sh.id);
          }
        }
      },
      h('span', {
        class: 'sw',
        style: `width:8px;height:8px;background:${tool.color(Array.isArray(sh.label) ? sh.label[0] : sh.label)}`
      }),
      h('span', { class: 'nm' }, `${i + 1}. ${name}`)
    );
    if (tool.q.text_title) {
      const input = h('input', {
        type: 'text',
        'data-shape': sh.id,
        placeholder: 'transcription',
        value: sh.text || ''
      });
      input.addEventListener('focus', () => {
        tool.selected = sh.id;
        tool.draw();
      });
      input.addEventListener('change', () => {
        const v = input.value;
        tool.app.change(() => {
          sh.text = v;
        });
        tool.draw();
      });
      row.append(input);
    }
    row.append(
      h(
        'button',
        {
          class: 'pl-btn',
          title: 'Delete',
          onclick: e => {
            e.stopPropagation();
            tool.selected = sh.id;
            tool.key({ key: 'Delete' });
          }
        },
        '×'
      )
    );
    rows.push(row);
  });
  if (!tool.model.shapes.length) {
    rows.push(
      h(
        'div',
        { class: 'pl-suggest' },
        tool.mode === 'rect' ? 'Drag on the image to draw a box.' : 'Click points; Enter or the first point closes.'
      )
    );
  }
  const sg = tool.suggestion;
  if (sg && (sg.shapes || []).length) {
    rows.push(
      h(
        'div',
        { class: 'pl-suggest' },
        `Suggestion: ${sg.shapes.length} box(es) (dashed) — `,
        h('span', { class: 'pl-kbd' }, 'A'),
        ' accept, ',
        h('span', { class: 'pl-kbd' }, 'Shift+A'),
        ' edit'
      )
    );
  }
  tool.list.replaceChildren(...rows);
}

// the four corners of the rectangle two opposite points span
export function rectPoints(a, b) {
  const x1 = Math.min(a[0], b[0]),
    x2 = Math.max(a[0], b[0]),
    y1 = Math.min(a[1], b[1]),
    y2 = Math.max(a[1], b[1]);
  return [
    [x1, y1],
    [x1, y2],
    [x2, y2],
    [x2, y1]
  ];
}
