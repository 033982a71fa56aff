import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRetention, type RetentionCandidate, type RetentionPlan } from '../../src/core/retention.js';

const A = '2026-11-25T061922Z';
const B = '2026-11-26T061922Z';
const C = '2026-11-27T061922Z';
const D = '2026-11-28T061922Z';
const E = '2026-11-29T061922Z';
const DAY = 86_400_000;

/** The rows below predate `rules` (checked in retention-calendar.test.ts): compare ids and reasons. */
interface PlainPlan {
  keep: Array<{ id: string; reason: string }>;
  remove: Array<{ id: string; reason: string }>;
}
function withoutRules(plan: RetentionPlan): PlainPlan {
  const strip = (d: RetentionPlan['keep'][number]) => ({ id: d.id, reason: d.reason });
  return { keep: plan.keep.map(strip), remove: plan.remove.map(strip) };
}

const v = (id: string): RetentionCandidate => ({ id, verified: true });
const u = (id: string): RetentionCandidate => ({ id, verified: false });

interface Row {
  name: string;
  generations: RetentionCandidate[];
  keep: number;
  protect?: string[];
  keepWithin?: number;
  now?: Date;
  expected: PlainPlan;
}

const rows: Row[] = [
  {
    name: 'no generations -> nothing to keep or remove',
    generations: [],
    keep: 3,
    expected: { keep: [], remove: [] },
  },
  {
    name: 'fewer verified generations than keep -> keeps all',
    generations: [v(A), v(B)],
    keep: 3,
    expected: {
      keep: [
        { id: B, reason: 'kept: among newest 3 verified' },
        { id: A, reason: 'kept: among newest 3 verified' },
      ],
      remove: [],
    },
  },
  {
    name: 'more verified generations than keep -> removes the oldest beyond keep',
    generations: [v(C), v(A), v(E), v(B), v(D)],
    keep: 3,
    expected: {
      keep: [
        { id: E, reason: 'kept: among newest 3 verified' },
        { id: D, reason: 'kept: among newest 3 verified' },
        { id: C, reason: 'kept: among newest 3 verified' },
      ],
      remove: [
        { id: B, reason: 'removed: beyond newest 3 verified' },
        { id: A, reason: 'removed: beyond newest 3 verified' },
      ],
    },
  },
  {
    name: 'newest generations unverified -> they do not count, the newest keep verified ones stay',
    generations: [v(A), v(B), u(C), u(D), u(E)],
    keep: 2,
    expected: {
      keep: [
        { id: E, reason: 'kept: unverified, newer than the oldest kept verified' },
        { id: D, reason: 'kept: unverified, newer than the oldest kept verified' },
        { id: C, reason: 'kept: unverified, newer than the oldest kept verified' },
        { id: B, reason: 'kept: among newest 2 verified' },
        { id: A, reason: 'kept: among newest 2 verified' },
      ],
      remove: [],
    },
  },
  {
    name: 'bit rot in the newest (marked unverified) -> the older verified ones are kept',
    generations: [v(A), v(B), v(C), u(D)],
    keep: 3,
    expected: {
      keep: [
        { id: D, reason: 'kept: unverified, newer than the oldest kept verified' },
        { id: C, reason: 'kept: among newest 3 verified' },
        { id: B, reason: 'kept: among newest 3 verified' },
        { id: A, reason: 'kept: among newest 3 verified' },
      ],
      remove: [],
    },
  },
  {
    name: 'unverified older than the oldest kept verified -> removed',
    generations: [u(A), v(B), u(C), v(D), v(E)],
    keep: 2,
    expected: {
      keep: [
        { id: E, reason: 'kept: among newest 2 verified' },
        { id: D, reason: 'kept: among newest 2 verified' },
      ],
      remove: [
        { id: C, reason: 'removed: unverified, older than the newest 2 verified' },
        { id: B, reason: 'removed: beyond newest 2 verified' },
        { id: A, reason: 'removed: unverified, older than the newest 2 verified' },
      ],
    },
  },
  {
    name: 'prune with no verified generation -> keeps everything',
    generations: [u(A), u(B), u(C), u(D)],
    keep: 1,
    expected: {
      keep: [
        { id: D, reason: 'kept: no verified generation' },
        { id: C, reason: 'kept: no verified generation' },
        { id: B, reason: 'kept: no verified generation' },
        { id: A, reason: 'kept: no verified generation' },
      ],
      remove: [],
    },
  },
  {
    name: 'keep 1 with only old verified -> keeps the newer unverified and the newest verified',
    generations: [v(A), u(B)],
    keep: 1,
    expected: {
      keep: [
        { id: B, reason: 'kept: unverified, newer than the oldest kept verified' },
        { id: A, reason: 'kept: among newest 1 verified' },
      ],
      remove: [],
    },
  },
  {
    name: 'protected old generation -> kept beyond keep',
    generations: [v(A), v(B), v(C), v(D)],
    keep: 2,
    protect: [A],
    expected: {
      keep: [
        { id: D, reason: 'kept: among newest 2 verified' },
        { id: C, reason: 'kept: among newest 2 verified' },
        { id: A, reason: 'kept: protected' },
      ],
      remove: [{ id: B, reason: 'removed: beyond newest 2 verified' }],
    },
  },
  {
    name: 'protected id that is not listed -> ignored',
    generations: [v(A), v(B)],
    keep: 1,
    protect: [E],
    expected: {
      keep: [{ id: B, reason: 'kept: among newest 1 verified' }],
      remove: [{ id: A, reason: 'removed: beyond newest 1 verified' }],
    },
  },
  {
    name: 'keepWithin 3d -> generations younger than the window survive the count',
    generations: [v(A), v(B), v(C), v(D), v(E)],
    keep: 1,
    keepWithin: 3 * DAY,
    now: new Date('2026-11-29T12:00:00Z'),
    expected: {
      keep: [
        { id: E, reason: 'kept: among newest 1 verified' },
        { id: D, reason: 'kept: within keepWithin' },
        { id: C, reason: 'kept: within keepWithin' },
      ],
      remove: [
        { id: B, reason: 'removed: beyond newest 1 verified' },
        { id: A, reason: 'removed: beyond newest 1 verified' },
      ],
    },
  },
  {
    name: "a burst of tiny generations within an hour -> last week's survive with keepWithin 7d",
    generations: [
      v(A),
      v(B),
      ...[0, 1, 2, 3, 4].map((m) => v(`2026-11-29T07${String(m * 10).padStart(2, '0')}00Z`)),
    ],
    keep: 3,
    keepWithin: 7 * DAY,
    now: new Date('2026-11-29T08:00:00Z'),
    expected: {
      keep: [
        { id: '2026-11-29T074000Z', reason: 'kept: among newest 3 verified' },
        { id: '2026-11-29T073000Z', reason: 'kept: among newest 3 verified' },
        { id: '2026-11-29T072000Z', reason: 'kept: among newest 3 verified' },
        { id: '2026-11-29T071000Z', reason: 'kept: within keepWithin' },
        { id: '2026-11-29T070000Z', reason: 'kept: within keepWithin' },
        { id: B, reason: 'kept: within keepWithin' },
        { id: A, reason: 'kept: within keepWithin' },
      ],
      remove: [],
    },
  },
  {
    name: 'keepWithin with ids in the future (clock skew) -> they count as young',
    generations: [v(A), v(B)],
    keep: 1,
    keepWithin: 0,
    now: new Date('2026-01-01T00:00:00Z'),
    expected: {
      keep: [
        { id: B, reason: 'kept: among newest 1 verified' },
        { id: A, reason: 'kept: within keepWithin' },
      ],
      remove: [],
    },
  },
];

for (const row of rows) {
  test(row.name, () => {
    const policy = {
      keep: row.keep,
      ...(row.protect === undefined ? {} : { protect: row.protect }),
      ...(row.keepWithin === undefined ? {} : { keepWithin: row.keepWithin }),
      ...(row.now === undefined ? {} : { now: row.now }),
    };
    assert.deepEqual(withoutRules(planRetention(row.generations, policy)), row.expected);
  });
}

const refusals: Array<{ name: string; generations: RetentionCandidate[]; keep: number; message: RegExp }> = [
  { name: 'keep 0 -> throws', generations: [v(A)], keep: 0, message: /at least 1/ },
  { name: 'negative keep -> throws', generations: [v(A)], keep: -3, message: /at least 1/ },
  { name: 'fractional keep -> throws', generations: [v(A)], keep: 1.5, message: /at least 1/ },
  { name: 'NaN keep -> throws', generations: [v(A)], keep: Number.NaN, message: /at least 1/ },
  { name: 'keep 0 with no generations -> still throws', generations: [], keep: 0, message: /at least 1/ },
  {
    name: 'an id that is not a generation id -> throws',
    generations: [v(A), v('../x')],
    keep: 1,
    message: /not a generation id/,
  },
  { name: 'a work dir name -> throws', generations: [v(`.${A}`)], keep: 1, message: /not a generation id/ },
  { name: 'a duplicated id -> throws', generations: [v(A), u(A)], keep: 1, message: /twice/ },
];

test('keepWithin without now -> throws', () => {
  assert.throws(() => planRetention([v(A)], { keep: 1, keepWithin: DAY }), /needs a valid `now`/);
});

test('negative keepWithin -> throws', () => {
  assert.throws(() => planRetention([v(A)], { keep: 1, keepWithin: -1, now: new Date() }), /keepWithin/);
});

for (const row of refusals) {
  test(row.name, () => {
    assert.throws(() => planRetention(row.generations, { keep: row.keep }), row.message);
  });
}

test('every listed generation -> lands in exactly one of keep and remove', () => {
  const all = [v(A), u(B), v(C), u(D), u(E)];
  for (let keep = 1; keep <= 6; keep++) {
    const plan = planRetention(all, { keep });
    const ids = [...plan.keep, ...plan.remove].map((d) => d.id).sort();
    assert.deepEqual(ids, [A, B, C, D, E]);
    assert.ok(
      plan.keep.some((d) => d.id === C),
      'the newest verified generation is kept',
    );
  }
});
