import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

// The `baton` script's shebang starts Node with the same flags as the installed units and the gate line.
test('the entry script’s shebang passes NODE_FLAGS to node', () => {
  const main = readFileSync(fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)), 'utf8');
  assert.equal(main.split('\n')[0], `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
});
