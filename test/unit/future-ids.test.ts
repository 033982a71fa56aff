import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planRetention, retentionReference } from '../../src/core/retention.js';
import { newestNotAhead } from '../../src/core/stale.js';
import { formatGenerationId, parseGenerationId } from '../../src/generation/names.js';

// Issue 10, hole 7: a generation id from the future (`9999-12-31T235959Z`, a source clock far ahead)
// never anchors retention or staleness.

const clock = new Date('2026-12-07T12:00:00Z');
const SKEW = 10 * 60_000;
const DAY = 86_400_000;
const FUTURE = '9999-12-31T235959Z';
const idAt = (msAgo: number) => formatGenerationId(new Date(clock.getTime() - msAgo));

test('retentionReference: a planted 9999 id is skipped, the newest real id is the reference', () => {
  const ids = [idAt(3 * DAY), idAt(DAY), FUTURE];
  assert.equal(
    retentionReference(ids, clock, SKEW)?.toISOString(),
    parseGenerationId(idAt(DAY))?.toISOString(),
  );
});

test('retentionReference: an id within the skew still counts; none left -> undefined', () => {
  const near = formatGenerationId(new Date(clock.getTime() + 5 * 60_000));
  assert.equal(
    retentionReference([idAt(DAY), near], clock, SKEW)?.getTime(),
    parseGenerationId(near)?.getTime(),
  );
  assert.equal(retentionReference([FUTURE], clock, SKEW), undefined);
  assert.equal(retentionReference([], clock, SKEW), undefined);
});

test('keepWithin counted from a future id would prune real generations; from the reference it keeps them', () => {
  // 7 daily generations, keep 2, keepWithin 10 days: every one is within 10 days of the newest real one
  const real = Array.from({ length: 7 }, (_, i) => idAt(i * DAY));
  const gens = [...real, FUTURE].map((id) => ({ id, verified: true }));
  const reference = retentionReference(
    gens.map((g) => g.id),
    clock,
    SKEW,
  );
  assert.ok(reference);
  const plan = planRetention(gens, {
    keep: 2,
    keepWithin: 10 * DAY,
    now: reference,
    futureAfter: new Date(clock.getTime() + SKEW),
  });
  assert.deepEqual(plan.remove, []);
  assert.deepEqual(
    plan.keep.find((k) => k.id === FUTURE),
    { id: FUTURE, reason: 'kept: dated in the future, not counted', rules: ['future', 'within'] },
  );
});

test('a future id never takes one of the `keep` newest slots', () => {
  const gens = [idAt(2 * DAY), idAt(DAY), idAt(0), FUTURE].map((id) => ({ id, verified: true }));
  const plan = planRetention(gens, { keep: 2, futureAfter: new Date(clock.getTime() + SKEW) });
  assert.deepEqual(
    plan.keep.map((k) => k.id),
    [FUTURE, idAt(0), idAt(DAY)],
  );
  assert.deepEqual(
    plan.remove.map((r) => r.id),
    [idAt(2 * DAY)],
  );
});

test('property: with futureAfter, ids beyond it are always kept and never change what else is kept', () => {
  const real = fc.uniqueArray(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 12 });
  const future = fc.uniqueArray(fc.integer({ min: 1, max: 10 ** 6 }), { maxLength: 4 });
  fc.assert(
    fc.property(real, future, fc.integer({ min: 1, max: 5 }), (hours, ahead, keep) => {
      const realIds = hours.map((h) => idAt(h * 3_600_000));
      const futureIds = ahead.map((m) => formatGenerationId(new Date(clock.getTime() + SKEW + m * 60_000)));
      const futureAfter = new Date(clock.getTime() + SKEW);
      const withFuture = planRetention(
        [...realIds, ...futureIds].map((id) => ({ id, verified: true })),
        { keep, futureAfter },
      );
      const without = planRetention(
        realIds.map((id) => ({ id, verified: true })),
        { keep, futureAfter },
      );
      for (const id of futureIds) assert.ok(withFuture.keep.some((k) => k.id === id));
      assert.deepEqual(withFuture.remove, without.remove);
    }),
  );
});

test('newestNotAhead: skips ids ahead of the clock beyond the skew', () => {
  const gens = [idAt(DAY), idAt(0), FUTURE].map((id) => ({ id, createdAt: parseGenerationId(id) ?? clock }));
  assert.equal(newestNotAhead(gens, clock, SKEW)?.id, idAt(0));
  assert.equal(newestNotAhead(gens.slice(2), clock, SKEW), undefined);
});
