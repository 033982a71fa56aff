import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cliEntry } from '../../src/cli/app.js';

// `baton install` writes the gate's forced command and the units with the entry script: in the split
// bundle the code asking sits in dist/cli/chunks/, and a path to chunks/main.js breaks every login.
test('cliEntry: from a bundle chunk -> the entry one level up; from tsc or the entry itself -> beside it', () => {
  assert.equal(cliEntry('file:///usr/lib/baton/cli/chunks/chunk-ABCD1234.js'), '/usr/lib/baton/cli/main.js');
  assert.equal(cliEntry('file:///srv/baton/dist/cli/app.js'), '/srv/baton/dist/cli/main.js');
  assert.equal(cliEntry('file:///srv/baton/dist/cli/main.js'), '/srv/baton/dist/cli/main.js');
});
