/**
 * Property-based tests of the retention planner: for any set of generations (verified or not) and any
 * keep ≥ 1, the plan never drops the safety nets of docs/design.md §2.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatGenerationId, parseGenerationId, sortNewestFirst } from '../../src/generation/names.js';
import { planRetention, type RetentionCandidate } from '../../src/core/retention.js';

const id = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map(formatGenerationId);

const generations = fc.uniqueArray(
  fc.record({ id, verified: fc.boolean() }).map((g): RetentionCandidate => g),
  { selector: (g) => g.id, maxLength: 30 },
);

/** Dense sets: ids one second apart, so "newest" and neighbours are exercised on equal footing. */
const denseGenerations = fc.array(fc.boolean(), { maxLength: 30 }).map((flags) =>
  flags.map((verified, i): RetentionCandidate => ({
    id: formatGenerationId(new Date(Date.UTC(2026, 10, 28, 6, 0, i))),
    verified,
  })),
);

const anyGenerations = fc.oneof(generations, denseGenerations);
const keep = fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 40 }));

const scenario = anyGenerations.chain((gens) =>
  fc.record({
    gens: fc.shuffledSubarray(gens, { minLength: gens.length, maxLength: gens.length }),
    keep,
    protect: fc.oneof(
      fc.constant(undefined),
      fc.subarray(gens.map((g) => g.id)),
      fc
        .tuple(fc.subarray(gens.map((g) => g.id)), fc.array(id, { maxLength: 2 }))
        .map(([a, b]) => [...a, ...b]),
    ),
  }),
);

const withWindow = scenario.chain((sc) =>
  fc.record({
    sc: fc.constant(sc),
    keepWithin: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 40 * 86_400_000 })),
    now: fc.date({
      min: new Date('2000-01-01T00:00:00Z'),
      max: new Date('2100-01-01T00:00:00Z'),
      noInvalidDate: true,
    }),
  }),
);

test('property: partition; the newest keep verified, unverified newer than them, protected and young ids survive', () => {
  fc.assert(
    fc.property(withWindow, ({ sc: { gens, keep: k, protect }, keepWithin, now }) => {
      const plan = planRetention(gens, {
        keep: k,
        ...(protect === undefined ? {} : { protect }),
        ...(keepWithin === undefined ? {} : { keepWithin, now }),
      });
      const kept = plan.keep.map((d) => d.id);
      const removed = plan.remove.map((d) => d.id);
      const all = gens.map((g) => g.id);

      // keep ∪ remove = input, disjoint
      assert.deepEqual([...kept, ...removed].sort(), [...all].sort());
      assert.equal(new Set([...kept, ...removed]).size, kept.length + removed.length);
      // both lists newest first
      assert.deepEqual(kept, sortNewestFirst(kept));
      assert.deepEqual(removed, sortNewestFirst(removed));

      const newestFirst = sortNewestFirst(all);
      const verified = new Set(gens.filter((g) => g.verified).map((g) => g.id));
      const verifiedNewestFirst = newestFirst.filter((g) => verified.has(g));
      const keptVerified = verifiedNewestFirst.slice(0, k);
      for (const g of keptVerified) assert.ok(kept.includes(g), `one of the newest ${k} verified removed`);
      if (verifiedNewestFirst.length === 0)
        assert.deepEqual(removed, [], 'removed something with no verified generation');

      // an unverified generation is never the reason a verified one is removed
      for (const r of removed) {
        if (!verified.has(r)) continue;
        const newerVerifiedKept = kept.filter((g) => verified.has(g) && g > r).length;
        assert.ok(
          newerVerifiedKept >= k,
          `verified ${r} removed with only ${newerVerifiedKept} newer verified`,
        );
      }
      // unverified generations newer than the oldest kept verified one are never removed
      const oldest = keptVerified.at(-1);
      if (oldest !== undefined)
        for (const r of removed) assert.ok(verified.has(r) || r < oldest, `unverified ${r} removed by count`);

      for (const p of protect ?? []) assert.ok(!removed.includes(p), `protected ${p} removed`);
      if (keepWithin !== undefined) {
        for (const r of removed) {
          const age = now.getTime() - (parseGenerationId(r)?.getTime() ?? 0);
          assert.ok(age >= keepWithin, `${r} removed inside the keepWithin window`);
        }
      }
      for (const d of [...plan.keep, ...plan.remove]) assert.match(d.reason, /^(kept|removed): /);
    }),
    { numRuns: 2000 },
  );
});

test('property: retention is stable: planning again over what was kept removes nothing more', () => {
  fc.assert(
    fc.property(scenario, ({ gens, keep: k }) => {
      const first = planRetention(gens, { keep: k });
      const left = gens.filter((g) => first.keep.some((d) => d.id === g.id));
      const second = planRetention(left, { keep: k });
      assert.deepEqual(second.remove, []);
    }),
    { numRuns: 1000 },
  );
});

test('property: a policy that could delete everything, bad ids and duplicates are refused', () => {
  fc.assert(
    fc.property(
      anyGenerations,
      fc.oneof(
        fc.integer({ max: 0 }),
        fc.double({ noNaN: false }).filter((x) => !Number.isInteger(x) || x < 1),
      ),
      (gens, badKeep) => {
        assert.throws(() => planRetention(gens, { keep: badKeep }), RangeError);
      },
    ),
  );
  fc.assert(
    fc.property(
      anyGenerations,
      fc.constantFrom('../x', '2026-13-45T999999Z', 'a\nb', '.2026-11-28T061922Z', ''),
      (gens, bad) => {
        assert.throws(() => planRetention([...gens, { id: bad, verified: true }], { keep: 1 }), RangeError);
      },
    ),
  );
  fc.assert(
    fc.property(
      anyGenerations.filter((g) => g.length > 0),
      (gens) => {
        const dup = gens[0] as RetentionCandidate;
        assert.throws(() => planRetention([...gens, { ...dup }], { keep: 1 }), RangeError);
      },
    ),
  );
});
