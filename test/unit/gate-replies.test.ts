import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  gateAckSchema,
  gateRejectSchema,
  MAX_LISTING_BYTES,
  parseGateListing,
  type GateListing,
} from '../../src/core/gate-replies.js';

const SHA = 'a'.repeat(64);
const expect = { source: 'shop', stream: 'data' as const };
// what the gate prints for `list` (src/gate/gate.ts builds it with the same type)
const listing: GateListing = {
  source: 'shop',
  stream: 'data',
  generations: [
    { id: '2026-12-07T154532Z', manifestSha256: SHA, manifestBytes: 120, ageSeconds: 60 },
    { id: '2026-12-06T154532Z', manifestSha256: SHA, manifestBytes: 0, ageSeconds: 86_460 },
  ],
};

test('a listing as the gate prints it parses, oldest first', () => {
  const r = parseGateListing(`${JSON.stringify(listing)}\n`, expect);
  assert.deepEqual(
    r.generations.map((g) => g.id),
    ['2026-12-06T154532Z', '2026-12-07T154532Z'],
  );
  assert.equal(r.generations[1]?.manifestBytes, 120);
});

test('a listing without ages (the sink does not need them) parses', () => {
  const text = JSON.stringify({
    ...listing,
    generations: listing.generations.map(({ id, manifestSha256, manifestBytes }) => ({
      id,
      manifestSha256,
      manifestBytes,
    })),
  });
  assert.equal(parseGateListing(text, expect).generations.length, 2);
});

const g0 = listing.generations[0]!;
const hostileListings: Array<{ name: string; text: string; message: RegExp }> = [
  { name: 'not JSON', text: 'Welcome to the source!\n', message: /^list output is not JSON: / },
  { name: 'larger than the cap', text: ' '.repeat(MAX_LISTING_BYTES + 1), message: /larger than 4 MiB/ },
  {
    name: 'an id that is a path',
    text: JSON.stringify({ ...listing, generations: [{ ...g0, id: '../../etc' }] }),
    message: /^list output rejected: not a generation id$/,
  },
  {
    name: 'an upper-case hash',
    text: JSON.stringify({ ...listing, generations: [{ ...g0, manifestSha256: SHA.toUpperCase() }] }),
    message: /^list output rejected: /,
  },
  {
    name: 'a negative manifest size',
    text: JSON.stringify({ ...listing, generations: [{ ...g0, manifestBytes: -1 }] }),
    message: /^list output rejected: /,
  },
  {
    name: 'a fractional age',
    text: JSON.stringify({ ...listing, generations: [{ ...g0, ageSeconds: 0.5 }] }),
    message: /^list output rejected: /,
  },
  {
    name: 'more generations than the cap',
    text: JSON.stringify({ ...listing, generations: Array.from({ length: 10_001 }, () => g0) }),
    message: /^list output rejected: /,
  },
  {
    name: 'a generation twice',
    text: JSON.stringify({ ...listing, generations: [g0, g0] }),
    message: /^list names a generation twice$/,
  },
  {
    name: 'another source',
    text: JSON.stringify({ ...listing, source: 'blog' }),
    message: /^list came from source "blog", expected "shop"$/,
  },
  {
    name: 'another stream',
    text: JSON.stringify({ ...listing, stream: 'logs' }),
    message: /^list is for stream logs, expected data$/,
  },
];

for (const h of hostileListings) {
  test(`a listing with ${h.name} -> refused with one line`, () => {
    assert.throws(
      () => parseGateListing(h.text, expect),
      (e: unknown) => e instanceof Error && h.message.test(e.message) && !e.message.includes('\n'),
    );
  });
}

test('ack replies: what the gate prints parses; older replies without pruned too', () => {
  assert.deepEqual(
    gateAckSchema.parse({ acked: g0.id, action: 'moved', pruned: ['2026-12-01T000000Z'] }).pruned,
    ['2026-12-01T000000Z'],
  );
  assert.equal(gateAckSchema.parse({ acked: g0.id, action: 'deleted' }).pruned, undefined);
});

test('ack replies with an unknown action, a huge id or a flood of pruned names -> refused', () => {
  for (const raw of [
    { acked: g0.id, action: 'copied', pruned: [] },
    { acked: 'x'.repeat(33), action: 'moved', pruned: [] },
    { acked: g0.id, action: 'moved', pruned: Array.from({ length: 10_001 }, () => g0.id) },
    { acked: g0.id, action: 'moved', pruned: 'all' },
  ]) {
    assert.equal(gateAckSchema.safeParse(raw).success, false, JSON.stringify(raw).slice(0, 80));
  }
});

test('reject replies: bounded id and place', () => {
  assert.equal(
    gateRejectSchema.parse({ rejected: g0.id, keptIn: '/h/.rejected/x' }).keptIn,
    '/h/.rejected/x',
  );
  assert.equal(gateRejectSchema.safeParse({ rejected: g0.id, keptIn: 'k'.repeat(4097) }).success, false);
  assert.equal(gateRejectSchema.safeParse({ rejected: g0.id }).success, false);
});
