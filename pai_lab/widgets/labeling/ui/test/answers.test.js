// The pure parts of the labeler, run with node's test runner (tests/unit/test_labeler_ui.py runs them).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answerFromModels, emptyModel, modelsFromAnswer } from '../src/answers.js';
import { assignHotkeys } from '../src/hotkeys.js';
import { Commands } from '../src/transport.js';

const single = { type: 'single', id: '2', title: '单选', required: true };
const boxes = { type: 'boxes', id: '1', title: '目标检测标签配置', required: true };
const ocr = { ...boxes, text_title: '文本' };
const spans = { type: 'spans', title: '文本内容' };
const relations = { type: 'relations', title: '关系' };
const segments = { type: 'segments', title: '音频', text_title: '转写' };
const size = { sizeOf: () => ({ width: 640, height: 480 }), durationOf: () => 3.14159 };

test("a chosen label is sent as a simple answer keyed by the question's title", () => {
  assert.deepEqual(answerFromModels([single], [{ value: '7' }], size), { answer: { 单选: '7' } });
});

test('a required question left unanswered is named, and nothing is sent', () => {
  const built = answerFromModels([single], [emptyModel(single)], size);
  assert.equal(built.missing, single);
  assert.equal(built.answer, undefined);
});

test('boxes carry the image size and points rounded to hundredths; an unlabeled box is refused', () => {
  const shape = {
    id: 'a',
    points: [
      [1.234, 2],
      [3, 2],
      [3, 4.567],
      [1.234, 4.567]
    ],
    label: 'digit'
  };
  const built = answerFromModels([boxes], [{ shapes: [shape] }], size);
  assert.deepEqual(built.answer['目标检测标签配置'], {
    width: 640,
    height: 480,
    shapes: [
      {
        id: 'a',
        points: [
          [1.23, 2],
          [3, 2],
          [3, 4.57],
          [1.23, 4.57]
        ],
        label: 'digit'
      }
    ]
  });
  const unlabeled = answerFromModels([boxes], [{ shapes: [{ ...shape, label: null }] }], size);
  assert.match(unlabeled.why, /has no label/);
  // OCR boxes need no label, their text goes along
  const text = answerFromModels([ocr], [{ shapes: [{ ...shape, label: null, text: 'hi' }] }], size);
  assert.equal(text.answer['目标检测标签配置'].shapes[0].text, 'hi');
  assert.equal(
    answerFromModels([boxes], [{ shapes: [] }], { ...size, sizeOf: () => undefined }).why,
    'the image did not load'
  );
});

test('spans, relations and segments keep their positions; the server fills in the text', () => {
  const built = answerFromModels(
    [spans, relations, segments],
    [
      { spans: [{ start: 0, end: 6, label: 'PER' }] },
      { rels: [{ from: [0, 6, 10, 20], to: [11, 17], label: 'works at' }] },
      { segs: [{ id: 's1', start: 0.123, end: 1.006, label: 'speech', text: 'hello' }] }
    ],
    size
  );
  assert.deepEqual(built.answer, {
    文本内容: { spans: [{ start: 0, end: 6, label: 'PER' }], empty: false },
    关系: [{ from: { start: 0, end: 6, x: 10, y: 20 }, to: { start: 11, end: 17, x: 0, y: 0 }, label: 'works at' }],
    音频: {
      duration: 3.14,
      segments: [{ id: 's1', start: 0.12, end: 1.01, label: 'speech', text: 'hello' }],
      empty: false
    }
  });
});

test("an item's answer from the server opens as the editable model of each question", () => {
  assert.deepEqual(modelsFromAnswer([single], { 单选: '7' }), [{ value: '7' }]);
  assert.deepEqual(modelsFromAnswer([single, spans], null), [{ value: null }, { spans: [] }]);
  const [model] = modelsFromAnswer([ocr], {
    目标检测标签配置: {
      width: 640,
      height: 480,
      shapes: [
        {
          id: 't',
          points: [
            [0, 0],
            [4, 0],
            [4, 2],
            [0, 2]
          ],
          label: null,
          text: 'EXIT'
        },
        {
          id: 'p',
          points: [
            [0, 0],
            [4, 1],
            [2, 3]
          ],
          label: 'x'
        }
      ]
    }
  });
  assert.deepEqual(
    model.shapes.map(sh => [sh.kind, sh.label, sh.text]),
    [
      ['rect', null, 'EXIT'],
      ['polygon', 'x', '']
    ]
  );
  // what the page sends back is what it was given
  const back = answerFromModels([ocr], [model], size).answer['目标检测标签配置'].shapes[0];
  assert.deepEqual(back, {
    id: 't',
    points: [
      [0, 0],
      [4, 0],
      [4, 2],
      [0, 2]
    ],
    label: null,
    text: 'EXIT'
  });
});

test("label keys: the task's own, then a one-character name, then the free number keys", () => {
  const labels = assignHotkeys([{ name: 'cat', hotkey: 'c' }, { name: '7' }, { name: 'dog' }, { name: 'bird' }]);
  assert.deepEqual(
    labels.map(l => l.hotkey),
    ['c', '7', '1', '2']
  );
});

test('a command is answered once, by its request id', async () => {
  const sent = [];
  const handlers = [];
  const model = { on: (_n, f) => handlers.push(f), off: () => {}, get: () => null, send: msg => sent.push(msg) };
  const commands = new Commands(model);
  const reply = commands.invoke('answer', { seq: 3 });
  assert.equal(sent[0].kind, 'anywidget-command');
  assert.equal(sent[0].name, 'answer');
  assert.deepEqual(sent[0].msg, { seq: 3 });
  handlers[0]({ kind: 'anywidget-command-response', id: "someone else's", response: { ok: false } }, []);
  handlers[0]({ kind: 'anywidget-command-response', id: sent[0].id, response: { ok: true, seq: 3 } }, []);
  assert.deepEqual(await reply, [{ ok: true, seq: 3 }, []]);
  commands.close();
});
