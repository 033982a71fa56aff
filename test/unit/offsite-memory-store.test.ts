import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../../src/offsite/memory-store.js';
import { ObjectExistsError } from '../../src/offsite/object-store.js';
import { conformance } from '../helpers/object-store-suite.js';

conformance('memory', () => Promise.resolve(new MemoryStore()));
conformance('memory locked', () => Promise.resolve(new MemoryStore({ retainMs: 60_000 })), true);

test('memory store: conditional put, retention expiry and extension with an injected clock', async () => {
  let now = 1_000_000;
  const s = new MemoryStore({ retainMs: 10_000, now: () => now });
  await s.put('c', new Uint8Array([1]), { ifNoneMatch: true });
  await assert.rejects(s.put('c', new Uint8Array([2]), { ifNoneMatch: true }), ObjectExistsError);
  assert.equal(await s.delete('c'), 'retained');
  await s.extendRetention('c', new Date(now + 20_000));
  await s.extendRetention('c', new Date(now + 5_000)); // never shortens
  now += 15_000;
  assert.equal(await s.delete('c'), 'retained');
  now += 6_000;
  assert.equal(await s.delete('c'), 'deleted');
  assert.equal(await s.head('c'), undefined);
});
