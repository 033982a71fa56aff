import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRetention, type RetentionCandidate, type RetentionPlan } from '../../src/core/retention.js';

const A = '2026-11-25T061922Z';
const B = '2026-11-26T061922Z';
const C = '2026-11-27T061922Z';
const D = '2026-11-28T061922Z';
const E = '2026-11-29T061922Z';

const v = (id: string): RetentionCandidate => ({ id, verified: true });
const u = (id: string): RetentionCandidate => ({ id, verified: false });

interface Row {
  name: string;
  generations: RetentionCandidate[];
  keep: number;
  protect?: string[];
  expected: RetentionPlan;
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
        { id: B, reason: 'kept: among newest 3' },
        { id: A, reason: 'kept: among newest 3' },
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
        { id: E, reason: 'kept: among newest 3' },
        { id: D, reason: 'kept: among newest 3' },
        { id: C, reason: 'kept: among newest 3' },
      ],
      remove: [
        { id: B, reason: 'removed: beyond newest 3' },
        { id: A, reason: 'removed: beyond newest 3' },
      ],
    },
  },
  {
    name: 'newest generations unverified -> also keeps the newest verified one beyond keep',
    generations: [v(A), v(B), u(C), u(D), u(E)],
    keep: 2,
    expected: {
      keep: [
        { id: E, reason: 'kept: among newest 2' },
        { id: D, reason: 'kept: among newest 2' },
        { id: B, reason: 'kept: newest verified' },
      ],
      remove: [
        { id: C, reason: 'removed: beyond newest 2' },
        { id: A, reason: 'removed: beyond newest 2' },
      ],
    },
  },
  {
    name: 'newest verified is among the newest -> no extra generation kept',
    generations: [v(A), u(B), v(C), u(D)],
    keep: 2,
    expected: {
      keep: [
        { id: D, reason: 'kept: among newest 2' },
        { id: C, reason: 'kept: among newest 2' },
      ],
      remove: [
        { id: B, reason: 'removed: beyond newest 2' },
        { id: A, reason: 'removed: beyond newest 2' },
      ],
    },
  },
  {
    name: 'prune with no verified generation -> keeps everything',
    generations: [u(A), u(B), u(C), u(D)],
    keep: 1,
    expected: {
      keep: [
        { id: D, reason: 'kept: among newest 1' },
        { id: C, reason: 'kept: no verified generation' },
        { id: B, reason: 'kept: no verified generation' },
        { id: A, reason: 'kept: no verified generation' },
      ],
      remove: [],
    },
  },
  {
    name: 'keep 1 with only old verified -> keeps the newest and the newest verified',
    generations: [v(A), u(B)],
    keep: 1,
    expected: {
      keep: [
        { id: B, reason: 'kept: among newest 1' },
        { id: A, reason: 'kept: newest verified' },
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
        { id: D, reason: 'kept: among newest 2' },
        { id: C, reason: 'kept: among newest 2' },
        { id: A, reason: 'kept: protected' },
      ],
      remove: [{ id: B, reason: 'removed: beyond newest 2' }],
    },
  },
  {
    name: 'protected id that is not listed -> ignored',
    generations: [v(A), v(B)],
    keep: 1,
    protect: [E],
    expected: {
      keep: [{ id: B, reason: 'kept: among newest 1' }],
      remove: [{ id: A, reason: 'removed: beyond newest 1' }],
    },
  },
];

for (const row of rows) {
  test(row.name, () => {
    const policy = row.protect === undefined ? { keep: row.keep } : { keep: row.keep, protect: row.protect };
    assert.deepEqual(planRetention(row.generations, policy), row.expected);
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
