/**
 * Calendar retention (`keepDaily` … `keepYearly`): property tests against a reference model written
 * here independently (UTC calendar from toISOString, ISO weeks counted from the Monday of week 1), and
 * edge cases: DST changes, year boundaries, ISO week 53, gaps, a burst of runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatGenerationId, parseGenerationId } from '../../src/generation/names.js';
import { planRetention, type RetentionCandidate, type RetentionPolicy } from '../../src/core/retention.js';
import { calendarKeysIn, isoWeek } from '../../src/core/calendar.js';

const DAY = 86_400_000;
type Unit = 'daily' | 'weekly' | 'monthly' | 'yearly';
const UNITS: Unit[] = ['daily', 'weekly', 'monthly', 'yearly'];

/** Monday 00:00 UTC of ISO week 1 of `year`: the Monday on or before 4 January. */
function week1Monday(year: number): number {
  const jan4 = Date.UTC(year, 0, 4);
  return jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAY;
}

function referenceKey(unit: Unit, id: string): string {
  const iso = (parseGenerationId(id) ?? new Date(0)).toISOString();
  if (unit === 'daily') return iso.slice(0, 10);
  if (unit === 'monthly') return iso.slice(0, 7);
  if (unit === 'yearly') return iso.slice(0, 4);
  const day = Date.parse(`${iso.slice(0, 10)}T00:00:00Z`);
  let y = Number(iso.slice(0, 4)) + 1;
  while (week1Monday(y) > day) y--;
  const week = Math.floor((day - week1Monday(y)) / (7 * DAY)) + 1;
  return `${y}-W${String(week).padStart(2, '0')}`;
}

/** The reference: which ids each calendar rule keeps, as id -> ['daily(1)', ...]. */
function referenceCalendar(
  verifiedIds: string[],
  counts: Partial<Record<Unit, number>>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const unit of UNITS) {
    const n = counts[unit] ?? 0;
    const newestPerBucket = new Map<string, string>();
    for (const id of verifiedIds) {
      const k = referenceKey(unit, id);
      const cur = newestPerBucket.get(k);
      if (cur === undefined || id > cur) newestPerBucket.set(k, id);
    }
    const buckets = [...newestPerBucket.keys()].sort().reverse().slice(0, n);
    buckets.forEach((b, i) => {
      const id = newestPerBucket.get(b) ?? '';
      out.set(id, [...(out.get(id) ?? []), `${unit}(${i + 1})`]);
    });
  }
  return out;
}

/** The whole reference plan: the set of kept ids. */
function referenceKept(gens: RetentionCandidate[], p: RetentionPolicy): Set<string> {
  const verified = gens
    .filter((g) => g.verified)
    .map((g) => g.id)
    .sort()
    .reverse();
  const kept = new Set<string>(verified.slice(0, p.keep));
  for (const id of referenceCalendar(verified, {
    daily: p.keepDaily,
    weekly: p.keepWeekly,
    monthly: p.keepMonthly,
    yearly: p.keepYearly,
  }).keys())
    kept.add(id);
  for (const id of p.protect ?? []) if (gens.some((g) => g.id === id)) kept.add(id);
  if (verified.length === 0) return new Set(gens.map((g) => g.id));
  const oldest = [...kept].filter((id) => verified.includes(id)).sort()[0] ?? '';
  for (const g of gens) if (!g.verified && g.id > oldest) kept.add(g.id);
  return kept;
}

const at = (ms: number) => formatGenerationId(new Date(ms));
const start = Date.UTC(2024, 0, 1);
/** Up to ~4 years of generations at random times, some several a day, with gaps. */
const generations = fc.uniqueArray(
  fc.record({
    id: fc.integer({ min: 0, max: 4 * 366 * 24 * 60 }).map((minutes) => at(start + minutes * 60_000)),
    verified: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
  }),
  { selector: (g) => g.id, maxLength: 60 },
);
const count = fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 12 }));
const policy = fc.record({
  keep: fc.integer({ min: 1, max: 5 }),
  keepDaily: count,
  keepWeekly: count,
  keepMonthly: count,
  keepYearly: count,
});

test('property: the plan keeps exactly what the reference model keeps (UTC), with the same calendar rules', () => {
  fc.assert(
    fc.property(generations, policy, (gens, p) => {
      const pol: RetentionPolicy = { ...p, timeZone: 'UTC' };
      const plan = planRetention(gens, pol);
      assert.deepEqual(new Set(plan.keep.map((k) => k.id)), referenceKept(gens, pol));
      assert.equal(plan.keep.length + plan.remove.length, gens.length);
      const ref = referenceCalendar(
        gens.filter((g) => g.verified).map((g) => g.id),
        { daily: p.keepDaily, weekly: p.keepWeekly, monthly: p.keepMonthly, yearly: p.keepYearly },
      );
      for (const k of plan.keep) {
        const calendarRules = k.rules.filter((r) => /^(daily|weekly|monthly|yearly)\(/.test(r));
        assert.deepEqual(calendarRules, ref.get(k.id) ?? [], k.id);
      }
      for (const r of plan.remove) assert.deepEqual(r.rules, []);
    }),
    { numRuns: 300 },
  );
});

test('property: the newest verified generation is always kept, whatever the calendar rules', () => {
  fc.assert(
    fc.property(
      generations,
      policy,
      fc.constantFrom('UTC', 'Europe/Berlin', 'Pacific/Auckland'),
      (gens, p, tz) => {
        const newest = gens
          .filter((g) => g.verified)
          .map((g) => g.id)
          .sort()
          .at(-1);
        const plan = planRetention(gens, { ...p, timeZone: tz });
        if (newest !== undefined)
          assert.ok(plan.keep.some((k) => k.id === newest && k.rules.includes('last(1)')));
      },
    ),
  );
});

test('property: burst-safe — a burst of runs on one day keeps every older calendar keeper its single run keeps', () => {
  const burst = fc.uniqueArray(fc.integer({ min: 0, max: 3599 }), { minLength: 1, maxLength: 20 });
  fc.assert(
    fc.property(
      generations,
      policy,
      burst,
      fc.integer({ min: 1, max: 20 }),
      (gens, p, offsets, hoursAfter) => {
        const newest = Math.max(
          start,
          ...gens.map((g) => (parseGenerationId(g.id) ?? new Date(0)).getTime()),
        );
        // a burst within one hour inside one UTC day, after every other generation
        const dayStart = Math.floor((newest + hoursAfter * 3_600_000) / DAY) * DAY + DAY;
        const burstIds = offsets.map((s) => at(dayStart + 3_600_000 + s * 1000));
        const last = burstIds.slice().sort().at(-1) ?? '';
        const pol: RetentionPolicy = { ...p, timeZone: 'UTC' };
        const withBurst = planRetention([...gens, ...burstIds.map((id) => ({ id, verified: true }))], pol);
        const single = planRetention([...gens, { id: last, verified: true }], pol);
        const calendarOf = (plan: typeof single, id: string) =>
          (plan.keep.find((k) => k.id === id)?.rules ?? []).filter((r) =>
            /^(daily|weekly|monthly|yearly)\(/.test(r),
          );
        for (const g of gens) assert.deepEqual(calendarOf(withBurst, g.id), calendarOf(single, g.id), g.id);
      },
    ),
  );
});

// ---- edge cases --------------------------------------------------------------------------------------

const v = (id: string): RetentionCandidate => ({ id, verified: true });
const rulesOf = (plan: ReturnType<typeof planRetention>) =>
  Object.fromEntries(plan.keep.map((k) => [k.id, k.rules.join(' ')]));

test('ISO weeks: week 53, a week that starts in the old year, a year that starts in the last week', () => {
  assert.deepEqual(isoWeek(2027, 1, 1), { year: 2026, week: 53 }); // 2026 starts on a Thursday
  assert.deepEqual(isoWeek(2026, 12, 31), { year: 2026, week: 53 });
  assert.deepEqual(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
  assert.deepEqual(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
  assert.deepEqual(isoWeek(2026, 12, 7), { year: 2026, week: 50 });
});

test('year boundary in the local zone: 23:30 UTC on 31 Dec is already next year (and day, and month) in Berlin', () => {
  const keys = calendarKeysIn('Europe/Berlin')(new Date('2026-12-31T23:30:00Z'));
  assert.deepEqual(keys, { daily: '2027-01-01', weekly: '2026-W53', monthly: '2027-01', yearly: '2027' });
  const gens = ['2026-12-31T223000Z', '2026-12-31T233000Z'].map(v);
  // keepYearly 2: in UTC both are 2026 (one keeper); in Berlin they are 2026 and 2027 (two keepers)
  assert.deepEqual(
    planRetention(gens, { keep: 1, keepYearly: 2, timeZone: 'UTC' }).remove.map((r) => r.id),
    ['2026-12-31T223000Z'],
  );
  assert.deepEqual(rulesOf(planRetention(gens, { keep: 1, keepYearly: 2, timeZone: 'Europe/Berlin' })), {
    '2026-12-31T233000Z': 'last(1) yearly(1)',
    '2026-12-31T223000Z': 'yearly(2)',
  });
});

test('DST end (Berlin, 25 Oct 2026): the repeated hour 02:00-03:00 is one local day, 25 hours long', () => {
  // 22:30Z on the 24th = 00:30 CEST on the 25th; 00:30Z = 02:30 CEST; 01:30Z = 02:30 CET; 22:30Z on the 25th = 23:30 CET
  const day25 = ['2026-10-24T223000Z', '2026-10-25T003000Z', '2026-10-25T013000Z', '2026-10-25T223000Z'];
  const gens = ['2026-10-24T213000Z', ...day25, '2026-10-25T233000Z'].map(v);
  const plan = planRetention(gens, { keep: 1, keepDaily: 3, timeZone: 'Europe/Berlin' });
  assert.deepEqual(rulesOf(plan), {
    '2026-10-25T233000Z': 'last(1) daily(1)', // 00:30 CET on the 26th
    '2026-10-25T223000Z': 'daily(2)', // the newest of the 25th's five local hours listed
    '2026-10-24T213000Z': 'daily(3)', // 23:30 CEST on the 24th
  });
  assert.deepEqual(
    plan.remove.map((r) => r.id),
    ['2026-10-25T013000Z', '2026-10-25T003000Z', '2026-10-24T223000Z'],
  );
});

test('DST start (New York, 8 Mar 2026): the 23-hour day is one bucket; the zone, not UTC, decides', () => {
  // 04:59Z = 23:59 EST on the 7th; 05:00Z = 00:00 EST on the 8th; 07:30Z = 03:30 EDT on the 8th
  const gens = ['2026-03-08T045900Z', '2026-03-08T050000Z', '2026-03-08T073000Z'].map(v);
  assert.deepEqual(rulesOf(planRetention(gens, { keep: 1, keepDaily: 2, timeZone: 'America/New_York' })), {
    '2026-03-08T073000Z': 'last(1) daily(1)',
    '2026-03-08T045900Z': 'daily(2)',
  });
  // the same ids in UTC all fall on the 8th: one daily keeper
  assert.deepEqual(
    planRetention(gens, { keep: 1, keepDaily: 2, timeZone: 'UTC' }).keep.map((k) => k.id),
    ['2026-03-08T073000Z'],
  );
});

test('gaps: the last N days that HAVE a generation count, not the last N calendar days', () => {
  const gens = ['2026-01-01T060000Z', '2026-01-05T060000Z', '2026-01-20T060000Z', '2026-01-20T070000Z'].map(
    v,
  );
  const plan = planRetention(gens, { keep: 1, keepDaily: 3, timeZone: 'UTC' });
  assert.deepEqual(rulesOf(plan), {
    '2026-01-20T070000Z': 'last(1) daily(1)',
    '2026-01-05T060000Z': 'daily(2)',
    '2026-01-01T060000Z': 'daily(3)',
  });
  assert.match(plan.remove[0]?.reason ?? '', /^removed: no rule keeps it \(last 1, daily 3\)$/);
});

test('union: a generation kept by several rules lists each; an unverified one never fills a bucket', () => {
  const gens: RetentionCandidate[] = [
    v('2025-11-30T060000Z'),
    v('2025-12-30T060000Z'),
    { id: '2025-12-31T060000Z', verified: false },
    v('2026-01-01T060000Z'),
  ];
  const plan = planRetention(gens, { keep: 1, keepMonthly: 3, keepYearly: 2, timeZone: 'UTC' });
  assert.deepEqual(rulesOf(plan), {
    '2026-01-01T060000Z': 'last(1) monthly(1) yearly(1)',
    '2025-12-31T060000Z': 'unverified-newer',
    '2025-12-30T060000Z': 'monthly(2) yearly(2)',
    '2025-11-30T060000Z': 'monthly(3)',
  });
  assert.equal(plan.keep.find((k) => k.id === '2025-12-30T060000Z')?.reason, 'kept: monthly(2) yearly(2)');
});

test('bad calendar policies throw: a negative or fractional count, an unknown time zone', () => {
  assert.throws(() => planRetention([v('2026-01-01T060000Z')], { keep: 1, keepDaily: -1 }), /keepDaily/);
  assert.throws(() => planRetention([v('2026-01-01T060000Z')], { keep: 1, keepWeekly: 1.5 }), /keepWeekly/);
  assert.throws(
    () => planRetention([v('2026-01-01T060000Z')], { keep: 1, keepDaily: 1, timeZone: 'Mars/Olympus' }),
    RangeError,
  );
});
