import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { age, formatBytes, pyString, ws } from '../src/format';

describe('formatBytes', () => {
  it('shows bytes whole and larger sizes with one decimal in binary units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  });

  it('stops at TiB and shows nothing for an unknown size', () => {
    assert.equal(formatBytes(2048 * 1024 ** 4), '2048.0 TiB');
    assert.equal(formatBytes(null), '');
    assert.equal(formatBytes(undefined), '');
  });
});

describe('age', () => {
  const now = Date.parse('2026-01-02T12:00:00Z');

  it('reads a time without a zone as UTC, as the API sends it', () => {
    assert.equal(age('2026-01-02T11:59:30', now), '30 s');
    assert.equal(age('2026-01-02T11:59:30Z', now), '30 s');
    assert.equal(age('2026-01-02T12:59:30+01:00', now), '30 s');
  });

  it('picks the largest whole unit', () => {
    assert.equal(age('2026-01-02T11:55:00Z', now), '5 min');
    assert.equal(age('2026-01-02T09:00:00Z', now), '3 h');
    assert.equal(age('2025-12-28T12:00:00Z', now), '5 d');
  });

  it('never shows a negative age, and nothing for a time it cannot read', () => {
    assert.equal(age('2026-01-02T12:00:10Z', now), '0 s');
    assert.equal(age('yesterday', now), '');
  });
});

describe('pyString', () => {
  it('makes a Python literal that survives quotes, backslashes and newlines', () => {
    assert.equal(pyString('reviews'), '"reviews"');
    assert.equal(pyString('a "b"\\c\nd'), '"a \\"b\\"\\\\c\\nd"');
  });
});

describe('ws', () => {
  it('builds a workspace route and escapes every part', () => {
    assert.equal(ws('default', 'datasets'), 'workspaces/default/datasets');
    assert.equal(ws('team a', 'jobs', 'x/y', 'logs'), 'workspaces/team%20a/jobs/x%2Fy/logs');
  });
});
