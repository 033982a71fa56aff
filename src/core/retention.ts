import { isGenerationId, parseGenerationId, sortNewestFirst } from '../generation/names.js';

/** A generation as retention sees it: its id (ids sort by time) and whether it was verified. */
export interface RetentionCandidate {
  id: string;
  verified: boolean;
}

export interface RetentionPolicy {
  /** How many of the newest VERIFIED generations to keep (at least 1). */
  keep: number;
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

export interface RetentionDecision {
  id: string;
  reason: string;
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
  const keptVerified = new Set(
    newestFirst.filter((id) => verified.get(id) === true && !isFuture(id)).slice(0, keep),
  );
  const oldestKeptVerified = [...keptVerified].at(-1);
  const cutoff = keepWithin !== undefined && now ? now.getTime() - keepWithin : undefined;
  const isYoung = (id: string) => cutoff !== undefined && (parseGenerationId(id)?.getTime() ?? 0) > cutoff;

  const plan: RetentionPlan = { keep: [], remove: [] };
  for (const id of newestFirst) {
    const isVerified = verified.get(id) === true;
    if (isFuture(id)) plan.keep.push({ id, reason: 'kept: dated in the future, not counted' });
    else if (keptVerified.has(id)) plan.keep.push({ id, reason: `kept: among newest ${keep} verified` });
    else if (protect.has(id)) plan.keep.push({ id, reason: 'kept: protected' });
    else if (isYoung(id)) plan.keep.push({ id, reason: 'kept: within keepWithin' });
    else if (oldestKeptVerified === undefined) plan.keep.push({ id, reason: 'kept: no verified generation' });
    else if (!isVerified && id > oldestKeptVerified)
      plan.keep.push({ id, reason: 'kept: unverified, newer than the oldest kept verified' });
    else if (isVerified) plan.remove.push({ id, reason: `removed: beyond newest ${keep} verified` });
    else plan.remove.push({ id, reason: `removed: unverified, older than the newest ${keep} verified` });
  }
  return plan;
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
