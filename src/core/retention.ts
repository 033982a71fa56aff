import { isGenerationId, parseGenerationId, sortNewestFirst } from '../generation/names.js';
import { CALENDAR_UNITS, calendarKeysIn, localTimeZone, type CalendarUnit } from './calendar.js';

/** A generation as retention sees it: its id (ids sort by time) and whether it was verified. */
export interface RetentionCandidate {
  id: string;
  verified: boolean;
}

export interface RetentionPolicy {
  /** How many of the newest VERIFIED generations to keep (at least 1). */
  keep: number;
  /**
   * Calendar rules (restic/borg `--keep-daily` …): for each of the last N days / ISO weeks / months /
   * years that HAVE a verified generation, its newest verified one is kept. Days without a generation
   * do not count (a gap never empties the rule). Unset or 0: the rule keeps nothing.
   */
  keepDaily?: number | undefined;
  keepWeekly?: number | undefined;
  keepMonthly?: number | undefined;
  keepYearly?: number | undefined;
  /** IANA time zone the calendar rules count days in (default: the host's local zone, `TZ`). */
  timeZone?: string | undefined;
  /** Ids never removed whatever their age (e.g. the generation just acked). */
  protect?: ReadonlyArray<string>;
  /**
   * Milliseconds: a generation whose id is younger than `now - keepWithin` is never removed, so a burst
   * of tiny generations cannot push last week's out by count. Needs `now`.
   */
  keepWithin?: number;
  /** The clock for `keepWithin` (the planner itself never reads the clock). */
  now?: Date;
  /**
   * Ids dated after this (ahead of the host's clock by more than the allowed skew: a source clock
   * problem or a planted id) are kept but never counted among the newest `keep` verified ones,
   * so they cannot push real generations out.
   */
  futureAfter?: Date;
}

/** The calendar keys of a config block (sink stream, source data stream, offsite). */
export interface CalendarRetention {
  keepDaily?: number | undefined;
  keepWeekly?: number | undefined;
  keepMonthly?: number | undefined;
  keepYearly?: number | undefined;
}

/** The calendar part of a policy from a config block: only the keys that are set. */
export function calendarPolicy(c: CalendarRetention): CalendarRetention {
  const out: CalendarRetention = {};
  if (c.keepDaily !== undefined) out.keepDaily = c.keepDaily;
  if (c.keepWeekly !== undefined) out.keepWeekly = c.keepWeekly;
  if (c.keepMonthly !== undefined) out.keepMonthly = c.keepMonthly;
  if (c.keepYearly !== undefined) out.keepYearly = c.keepYearly;
  return out;
}

/** True when a config block sets any calendar rule above 0. */
export function hasCalendarRules(c: CalendarRetention): boolean {
  return [c.keepDaily, c.keepWeekly, c.keepMonthly, c.keepYearly].some((n) => (n ?? 0) > 0);
}

export interface RetentionDecision {
  id: string;
  reason: string;
  /**
   * Every rule that keeps it (union), e.g. `last(1)`, `daily(1)`, `monthly(3)` (the 3rd newest month
   * kept), `within`, `protected`, `future`, `unverified-newer`, `no-verified`; empty for a removal.
   */
  rules: string[];
}

export interface RetentionPlan {
  /** Newest first. */
  keep: RetentionDecision[];
  /** Newest first. */
  remove: RetentionDecision[];
}

/**
 * Given generations in any order and a policy, returns which to keep and which to remove, each with a
 * reason (`kept: among newest 3 verified`, `kept: within keepWithin`, `removed: beyond newest 3 verified`).
 *
 * - The newest `keep` VERIFIED generations are kept. Unverified generations never count towards
 *   `keep`: an unverified (e.g. bit-rotted) generation is never the reason a verified one is removed.
 * - Every unverified generation newer than the oldest kept verified one is kept too (it is not ours to
 *   delete on a count basis); unverified ones older than that are removed with the verified ones.
 * - Generations younger than `keepWithin` (by their id, against `now`) are kept; ids in the future
 *   (clock skew) count as young.
 * - Ids in `protect` are always kept.
 * - Calendar rules (`keepDaily` … `keepYearly`, in `timeZone`, default the host's local zone): the
 *   newest verified generation of each of the last N days / ISO weeks / months / years that have one.
 *   All rules are a union: a generation any rule keeps is kept, and `rules` lists every one of them.
 * - Burst-safe: a burst of runs (many generations in a short time) never pushes out an older keeper.
 *   For the count rule that is `keepWithin` (a burst younger than it is kept, and what it pushed past
 *   the newest `keep` is kept while it is younger too); the calendar rules are burst-safe by
 *   construction: a burst fills the bucket(s) it falls in, so for every older generation the plan is
 *   the same as after the burst's newest generation alone (test/unit/retention-calendar.test.ts).
 * - Ids dated after `futureAfter` are kept and never counted (see `retentionReference` for `now`).
 * - With no verified generation at all nothing is removed: there is no known-good generation to fall
 *   back on, so deleting anything could leave no recovery point.
 *
 * Throws on a policy that could delete everything (`keep` < 1 or not an integer), on a `keepWithin`
 * that is negative or given without `now`, on an id that is not a generation id, and on a duplicated
 * id — all signs that the caller listed the wrong thing.
 */
export function planRetention(
  generations: ReadonlyArray<RetentionCandidate>,
  policy: RetentionPolicy,
): RetentionPlan {
  const { keep, keepWithin, now } = policy;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new RangeError(`retention policy must keep at least 1 generation (got ${String(keep)})`);
  }
  if (keepWithin !== undefined) {
    if (!Number.isFinite(keepWithin) || keepWithin < 0)
      throw new RangeError(`keepWithin must be a duration of 0 or more (got ${String(keepWithin)})`);
    if (now === undefined || Number.isNaN(now.getTime()))
      throw new RangeError('keepWithin needs a valid `now`');
  }
  const counts = calendarCounts(policy);
  const verified = new Map<string, boolean>();
  for (const g of generations) {
    if (!isGenerationId(g.id)) throw new RangeError(`not a generation id: ${JSON.stringify(g.id)}`);
    if (verified.has(g.id)) throw new RangeError(`generation listed twice: ${g.id}`);
    verified.set(g.id, g.verified);
  }
  const protect = new Set(policy.protect ?? []);
  const newestFirst = sortNewestFirst([...verified.keys()]);
  const futureAfter = policy.futureAfter?.getTime();
  const isFuture = (id: string) =>
    futureAfter !== undefined && (parseGenerationId(id)?.getTime() ?? 0) > futureAfter;
  const counted = newestFirst.filter((id) => verified.get(id) === true && !isFuture(id));
  const keptVerified = new Set(counted.slice(0, keep));
  const calendar = keptByCalendar(counted, counts, policy.timeZone ?? localTimeZone());
  const oldestKeptVerified = counted.filter((id) => keptVerified.has(id) || calendar.has(id)).at(-1);
  const cutoff = keepWithin !== undefined && now ? now.getTime() - keepWithin : undefined;
  const isYoung = (id: string) => cutoff !== undefined && (parseGenerationId(id)?.getTime() ?? 0) > cutoff;
  const position = new Map(counted.map((id, i) => [id, i + 1]));

  const plan: RetentionPlan = { keep: [], remove: [] };
  for (const id of newestFirst) {
    const isVerified = verified.get(id) === true;
    const rules: string[] = [];
    if (isFuture(id)) rules.push('future');
    if (keptVerified.has(id)) rules.push(`last(${position.get(id) ?? 0})`);
    rules.push(...(calendar.get(id) ?? []));
    if (protect.has(id)) rules.push('protected');
    if (isYoung(id)) rules.push('within');
    if (rules.length === 0 && oldestKeptVerified === undefined) rules.push('no-verified');
    if (rules.length === 0 && !isVerified && id > (oldestKeptVerified ?? '')) rules.push('unverified-newer');
    if (rules.length > 0) plan.keep.push({ id, reason: keepReason(id, rules, keep, calendar), rules });
    else if (isVerified) plan.remove.push({ id, reason: removeReason(keep, counts, 'verified'), rules });
    else plan.remove.push({ id, reason: removeReason(keep, counts, 'unverified'), rules });
  }
  return plan;
}

/** The calendar rules in effect (count > 0), checked: a count must be a whole number of 0 or more. */
function calendarCounts(policy: RetentionPolicy): Array<[CalendarUnit, number]> {
  const out: Array<[CalendarUnit, number]> = [];
  for (const unit of CALENDAR_UNITS) {
    const n = policy[KEY_OF[unit]];
    if (n === undefined) continue;
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`${KEY_OF[unit]} must be a whole number of 0 or more (got ${String(n)})`);
    if (n > 0) out.push([unit, n]);
  }
  return out;
}

const KEY_OF = {
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
} as const satisfies Record<CalendarUnit, keyof RetentionPolicy>;

/**
 * id → its calendar rules (`daily(1)`, `monthly(3)`): walking the verified ids newest first, the first
 * id of each new bucket is that bucket's newest and is kept, until the rule has kept N buckets.
 */
function keptByCalendar(
  newestFirst: readonly string[],
  counts: ReadonlyArray<[CalendarUnit, number]>,
  timeZone: string,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (counts.length === 0) return out;
  const keysOf = calendarKeysIn(timeZone);
  const keys = newestFirst.map((id) => keysOf(parseGenerationId(id) ?? new Date(0)));
  for (const [unit, n] of counts) {
    let last: string | undefined;
    let taken = 0;
    for (let i = 0; i < newestFirst.length && taken < n; i++) {
      const key = keys[i]?.[unit];
      const id = newestFirst[i];
      if (key === undefined || id === undefined || key === last) continue;
      last = key;
      taken++;
      out.set(id, [...(out.get(id) ?? []), `${unit}(${taken})`]);
    }
  }
  return out;
}

/** The one-line reason of a kept generation: its strongest rule, in the words used since 0.1. */
function keepReason(
  id: string,
  rules: readonly string[],
  keep: number,
  calendar: Map<string, string[]>,
): string {
  const [first] = rules;
  if (first === 'future') return 'kept: dated in the future, not counted';
  if (first?.startsWith('last(')) return `kept: among newest ${keep} verified`;
  const byCalendar = calendar.get(id);
  if (byCalendar !== undefined) return `kept: ${byCalendar.join(' ')}`;
  if (first === 'protected') return 'kept: protected';
  if (first === 'within') return 'kept: within keepWithin';
  if (first === 'no-verified') return 'kept: no verified generation';
  return 'kept: unverified, newer than the oldest kept verified';
}

function removeReason(
  keep: number,
  counts: ReadonlyArray<[CalendarUnit, number]>,
  kind: 'verified' | 'unverified',
): string {
  if (counts.length > 0)
    return `removed: no rule keeps it (last ${keep}${counts.map(([u, n]) => `, ${u} ${n}`).join('')})`;
  return kind === 'verified'
    ? `removed: beyond newest ${keep} verified`
    : `removed: unverified, older than the newest ${keep} verified`;
}

/**
 * The reference time for `keepWithin`: the newest id that is not ahead of `clock` by more than
 * `skewMs`. Counting from the newest id keeps a sink clock that jumps from changing what is pruned;
 * skipping ids from the future keeps one planted id (`9999-12-31T235959Z`) from making every real
 * generation "old". Undefined when there is no such id.
 */
export function retentionReference(ids: readonly string[], clock: Date, skewMs: number): Date | undefined {
  const limit = clock.getTime() + skewMs;
  let best: Date | undefined;
  for (const id of ids) {
    const t = parseGenerationId(id);
    if (t === undefined || t.getTime() > limit) continue;
    if (best === undefined || t.getTime() > best.getTime()) best = t;
  }
  return best;
}
