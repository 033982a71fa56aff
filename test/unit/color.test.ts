import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colorEnabled } from '../../src/core/color.js';

test('colour: NO_COLOR off, FORCE_COLOR on (even off a TTY), TERM=dumb off, else the TTY decides', () => {
  assert.equal(colorEnabled({}, true), true);
  assert.equal(colorEnabled({}, false), false);
  assert.equal(colorEnabled({ NO_COLOR: '1' }, true), false);
  assert.equal(colorEnabled({ NO_COLOR: '' }, true), true);
  assert.equal(colorEnabled({ FORCE_COLOR: '1' }, false), true);
  assert.equal(colorEnabled({ FORCE_COLOR: '0' }, true), false);
  assert.equal(colorEnabled({ TERM: 'dumb' }, true), false);
  assert.equal(colorEnabled({ TERM: 'dumb', FORCE_COLOR: '1' }, true), true);
  assert.equal(colorEnabled({ NO_COLOR: 'x', FORCE_COLOR: '1' }, true), false);
});
