import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProcess } from '../../src/adapters/run.js';

// A SIGTERM that arrives just before a child is spawned (baton's abort signal already aborted):
// the child must be ended at once, not run to its end (found: a 1,000,000-file mirror refresh
// went on for minutes after "SIGTERM received").
test('runProcess with an already aborted signal ends the child at once', async () => {
  const ac = new AbortController();
  ac.abort();
  const t = Date.now();
  const r = await runProcess(['sleep', '30'], { signal: ac.signal, killGraceMs: 1000 });
  assert.ok(Date.now() - t < 10_000, `ended after ${Date.now() - t} ms`);
  assert.equal(r.signal, 'SIGTERM');
});
