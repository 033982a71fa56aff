import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatHeadLine,
  gateAckSchema,
  gateRejectSchema,
  MAX_INLINE_MANIFEST_BYTES,
  MAX_LIST_HEAD_BYTES,
  MAX_LISTING_BYTES,
  parseGateListing,
  parseListingWithHead,
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

// ---------------------------------------------------------------------------------------------------------
// list-head: the listing and the oldest generation's manifest in one reply (hostile input on the sink)

const MANIFEST_BYTES = Buffer.from('f 0644 0 0 1 3 ' + 'b'.repeat(64) + ' tree/x\n');
const headListing: GateListing = {
  source: 'shop',
  stream: 'data',
  generations: [
    // the gate lists oldest first; the parser sorts anyway
    { id: '2026-12-06T154532Z', manifestSha256: SHA, manifestBytes: MANIFEST_BYTES.length },
    { id: '2026-12-07T154532Z', manifestSha256: SHA, manifestBytes: 10 },
  ],
};
const headReply = (listingObj: unknown, headLine: string | undefined, bytes: Buffer = MANIFEST_BYTES) =>
  Buffer.concat([
    Buffer.from(`${JSON.stringify(listingObj)}\n`),
    ...(headLine === undefined ? [] : [Buffer.from(headLine), bytes]),
  ]);
const oldestId = '2026-12-06T154532Z';

test('list-head with the oldest manifest -> the listing and the exact bytes', () => {
  const r = parseListingWithHead(
    headReply(headListing, formatHeadLine(oldestId, MANIFEST_BYTES.length)),
    expect,
  );
  assert.equal(r.listing.generations.length, 2);
  assert.equal(r.head?.id, oldestId);
  assert.deepEqual(r.head?.manifest, MANIFEST_BYTES);
});

test('list-head without a manifest (too large, an older gate`s plain list) -> the listing alone', () => {
  const r = parseListingWithHead(headReply(headListing, undefined), expect);
  assert.equal(r.head, undefined);
  assert.equal(r.listing.generations[0]?.id, oldestId);
});

const hostileHeads: Array<{ name: string; reply: Buffer; message: RegExp }> = [
  { name: 'no newline at all', reply: Buffer.from(JSON.stringify(headListing)), message: /no listing line/ },
  {
    name: 'a listing line over the cap',
    reply: Buffer.concat([Buffer.alloc(MAX_LISTING_BYTES + 1, 0x20), Buffer.from('\n')]),
    message: /no listing line/,
  },
  {
    name: 'a whole reply over the cap',
    reply: Buffer.alloc(MAX_LIST_HEAD_BYTES + 1, 0x20),
    message: /larger than its cap/,
  },
  {
    name: 'a manifest of a generation that is not the oldest',
    reply: headReply(headListing, formatHeadLine('2026-12-07T154532Z', 10), Buffer.alloc(10)),
    message: /not of the oldest generation listed/,
  },
  {
    name: 'a manifest of a path instead of an id',
    reply: headReply(headListing, `manifest ../../etc/shadow ${MANIFEST_BYTES.length}\n`),
    message: /bad manifest line/,
  },
  {
    name: 'a manifest of an id not listed',
    reply: headReply(headListing, formatHeadLine('2026-12-01T000000Z', MANIFEST_BYTES.length)),
    message: /not of the oldest/,
  },
  {
    name: 'more bytes than announced (a smuggled second file)',
    reply: headReply(
      headListing,
      formatHeadLine(oldestId, MANIFEST_BYTES.length),
      Buffer.concat([MANIFEST_BYTES, Buffer.from('manifest x 1\nA')]),
    ),
    message: /manifest bytes of .* where \d+ were announced/,
  },
  {
    name: 'fewer bytes than announced (a cut reply)',
    reply: headReply(
      headListing,
      formatHeadLine(oldestId, MANIFEST_BYTES.length),
      MANIFEST_BYTES.subarray(3),
    ),
    message: /were announced/,
  },
  {
    name: 'a size other than the listed one',
    reply: headReply(headListing, formatHeadLine(oldestId, 3), MANIFEST_BYTES.subarray(0, 3)),
    message: /the listing says/,
  },
  {
    name: 'a size over the inline cap (listed that large too)',
    reply: headReply(
      {
        ...headListing,
        generations: [{ ...headListing.generations[0], manifestBytes: MAX_INLINE_MANIFEST_BYTES + 1 }],
      },
      formatHeadLine(oldestId, MAX_INLINE_MANIFEST_BYTES + 1),
      Buffer.alloc(MAX_INLINE_MANIFEST_BYTES + 1),
    ),
    message: /the listing says/,
  },
  {
    name: 'a size with a sign, a leading zero or an exponent',
    reply: headReply(headListing, `manifest ${oldestId} 0${MANIFEST_BYTES.length}\n`),
    message: /bad manifest line/,
  },
  {
    name: 'a header line without its end',
    reply: headReply(headListing, `manifest ${oldestId} ${'9'.repeat(80)}`, Buffer.alloc(0)),
    message: /no manifest line/,
  },
  {
    name: 'text after the listing that is no header',
    reply: headReply(headListing, 'Welcome back!\n', Buffer.alloc(0)),
    message: /bad manifest line/,
  },
  {
    name: 'a hostile listing',
    reply: headReply({ ...headListing, source: 'blog' }, formatHeadLine(oldestId, MANIFEST_BYTES.length)),
    message: /^list came from source "blog"/,
  },
];

for (const h of hostileHeads) {
  test(`list-head with ${h.name} -> refused with one line`, () => {
    assert.throws(
      () => parseListingWithHead(h.reply, expect),
      (e: unknown) =>
        e instanceof Error &&
        h.message.test(e.message) &&
        !e.message.includes('\n') &&
        e.message.length < 400,
    );
  });
}
