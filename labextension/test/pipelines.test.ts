import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Matrix, duration, layoutDag, may, runActions, stateTone, stepsText } from '../src/pipelines';

describe('stateTone', () => {
  it('colours PAI states by what they mean', () => {
    assert.equal(stateTone('Succeeded'), 'ok');
    assert.equal(stateTone('Failed'), 'bad');
    assert.equal(stateTone('Terminated'), 'warn');
    assert.equal(stateTone('Suspended'), 'warn');
    assert.equal(stateTone('Running'), 'busy');
    assert.equal(stateTone('ReadyToSchedule'), 'busy');
    assert.equal(stateTone('Skipped'), 'idle');
    assert.equal(stateTone('SomethingNew'), 'idle');
  });
});

describe('duration and steps', () => {
  const now = Date.parse('2026-01-02T12:00:00Z');

  it('measures from start to end, or to now while running, reading zone-less times as UTC', () => {
    assert.equal(duration('2026-01-02T11:59:15', '2026-01-02T12:00:00', now), '45 s');
    assert.equal(duration('2026-01-02T11:56:55Z', null, now), '3 min 5 s');
    assert.equal(duration('2026-01-02T09:50:00+00:00', null, now), '2 h 10 min');
    assert.equal(duration(null, null, now), '');
  });

  it('counts steps', () => {
    assert.equal(stepsText(3, 7), '3/7 steps');
    assert.equal(stepsText(0, 1), '0/1 step');
  });
});

describe('layoutDag', () => {
  it('puts a step one layer below its deepest dependency and draws an edge per dependency', () => {
    const layout = layoutDag(
      [
        { name: 'evaluate', depends: ['predict'], status: 'Initialized' },
        { name: 'sql', depends: [], status: 'Succeeded', cached: true },
        { name: 'split', depends: ['sql'], status: 'Succeeded' },
        { name: 'train', depends: ['split'], status: 'Running' },
        { name: 'predict', depends: ['train', 'split', 'gone'], status: 'Failed' }
      ],
      100,
      20,
      10,
      10
    );
    const layer = Object.fromEntries(layout.boxes.map(b => [b.name, b.layer]));
    assert.deepEqual(layer, { sql: 0, split: 1, train: 2, predict: 3, evaluate: 4 });
    assert.equal(layout.edges.length, 5); // 'gone' is not a step of the run
    const byName = Object.fromEntries(layout.boxes.map(b => [b.name, b]));
    assert.equal(byName.sql.tone, 'ok');
    assert.equal(byName.sql.cached, true);
    assert.equal(byName.predict.tone, 'bad');
    assert.ok(layout.boxes.every(b => b.y + 20 <= layout.height && b.x + 100 <= layout.width));
    const edge = layout.edges.find(e => e.from === 'sql' && e.to === 'split')!;
    assert.equal(edge.y1, byName.sql.y + 20);
    assert.equal(edge.y2, byName.split.y);
  });

  it('puts independent steps side by side', () => {
    const layout = layoutDag(
      [
        { name: 'a', depends: [], status: 'Running' },
        { name: 'b', depends: [], status: 'Running' }
      ],
      100,
      20,
      10,
      10
    );
    assert.equal(layout.width, 230);
    assert.notEqual(layout.boxes[0].x, layout.boxes[1].x);
    assert.equal(layout.boxes[0].y, layout.boxes[1].y);
  });
});

const MATRIX: Matrix = {
  'pipeline.run': { Owner: 'all', Administrator: 'all', AlgorithmDeveloper: 'all', AlgorithmOps: 'all' },
  'pipeline.manage': { Owner: 'all', Administrator: 'all', AlgorithmDeveloper: 'own', AlgorithmOps: 'all' }
};

describe('may', () => {
  it("follows the server's matrix: all, own only on one's runs, nothing without a grant", () => {
    assert.ok(may(MATRIX, ['Owner'], 'pipeline.manage', 'ann', 'bob').ok);
    assert.ok(may(MATRIX, ['AlgorithmDeveloper'], 'pipeline.manage', 'bob', 'bob').ok);
    const own = may(MATRIX, ['AlgorithmDeveloper'], 'pipeline.manage', 'ann', 'bob');
    assert.equal(own.ok, false);
    assert.match(own.why, /only on runs you started/);
    const guest = may(MATRIX, ['Guest'], 'pipeline.manage', 'ann', 'ann');
    assert.equal(guest.ok, false);
    assert.match(guest.why, /^Guest may not pipeline\.manage; it needs one of: Owner, Administrator, AlgorithmOps$/);
  });
});

describe('runActions', () => {
  it('offers what the state allows', () => {
    const labels = (status: string) => runActions(status, 'ann', MATRIX, ['Owner'], 'ann').map(a => a.label);
    assert.deepEqual(labels('Running'), ['Suspend', 'Terminate']);
    assert.deepEqual(labels('Suspended'), ['Resume', 'Terminate']);
    assert.deepEqual(labels('Failed'), ['Retry']);
    assert.deepEqual(labels('Terminated'), ['Retry']);
    assert.deepEqual(labels('Succeeded'), []);
    assert.ok(runActions('Running', 'ann', MATRIX, ['Owner'], 'ann').every(a => a.enabled));
  });

  it('disables, with the reason as the tooltip, what the role cannot do', () => {
    const guest = runActions('Running', 'ann', MATRIX, ['Guest'], 'bob');
    assert.ok(guest.every(a => !a.enabled && a.title.startsWith('Guest may not pipeline.manage')));
    const dev = runActions('Failed', 'ann', MATRIX, ['AlgorithmDeveloper'], 'bob');
    assert.equal(dev[0].enabled, false);
    assert.match(dev[0].title, /only on runs you started/);
    assert.ok(runActions('Failed', 'bob', MATRIX, ['AlgorithmDeveloper'], 'bob')[0].enabled);
    assert.ok(runActions('Running', 'ann', undefined, ['Owner'], 'ann').every(a => !a.enabled));
  });
});
