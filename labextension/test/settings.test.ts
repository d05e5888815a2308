import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { DEFAULT_REFRESH_SECONDS, chooseWorkspace, readSettings } from '../src/settings';

describe('readSettings', () => {
  it('gives the defaults for no settings at all', () => {
    assert.deepEqual(readSettings(undefined), {
      workspace: '',
      poll: { jobs: 10000, jobLog: 3000, services: 10000, labeling: 30000, cluster: 30000, pipelines: 5000 }
    });
  });

  it('keeps the defaults for intervals a partial setting leaves out', () => {
    const settings = readSettings({ workspace: ' team_a ', refreshSeconds: { jobs: 5 } });
    assert.equal(settings.workspace, 'team_a');
    assert.equal(settings.poll.jobs, 5000);
    assert.equal(settings.poll.services, 10000);
  });

  it('turns polling off at 0 and never polls faster than once a second', () => {
    const poll = readSettings({ refreshSeconds: { jobs: 0, jobLog: 0.01, services: -3, labeling: 2.5 } }).poll;
    assert.equal(poll.jobs, 0);
    assert.equal(poll.jobLog, 1000);
    assert.equal(poll.services, 0);
    assert.equal(poll.labeling, 2500);
  });

  it('ignores values of the wrong type', () => {
    const settings = readSettings({ workspace: 42, refreshSeconds: { jobs: 'fast', cluster: NaN } });
    assert.equal(settings.workspace, '');
    assert.equal(settings.poll.jobs, 10000);
    assert.equal(settings.poll.cluster, 30000);
  });

  it('uses the same defaults as the settings schema the Settings Editor shows', () => {
    const schema = JSON.parse(readFileSync(join(__dirname, '..', 'schema', 'sidebar.json'), 'utf8'));
    const refresh = schema.properties.refreshSeconds;
    assert.deepEqual(refresh.default, DEFAULT_REFRESH_SECONDS);
    for (const [key, seconds] of Object.entries(DEFAULT_REFRESH_SECONDS)) {
      assert.equal(refresh.properties[key].default, seconds, key);
    }
  });
});

describe('chooseWorkspace', () => {
  const names = ['default', 'team_a', 'team_b'];

  it('keeps the wanted workspace when the user is a member of it', () => {
    assert.equal(chooseWorkspace(names, 'team_b', 'default'), 'team_b');
  });

  it("falls back to the server's default workspace, then to the first listed", () => {
    assert.equal(chooseWorkspace(names, 'gone', 'default'), 'default');
    assert.equal(chooseWorkspace(names, '', 'default'), 'default');
    assert.equal(chooseWorkspace(['team_a', 'team_b'], 'gone', 'default'), 'team_a');
  });

  it('chooses none when the user is a member of no workspace', () => {
    assert.equal(chooseWorkspace([], 'team_a', 'default'), null);
  });
});
