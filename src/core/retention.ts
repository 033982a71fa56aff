import { isGenerationId, sortNewestFirst } from './generation-id.js';

/** A generation as retention sees it: its id (ids sort by time) and whether it was verified. */
export interface RetentionCandidate {
  id: string;
  verified: boolean;
}

export interface RetentionPolicy {
  /** How many of the newest generations to keep (at least 1). */
  keep: number;
  /** Ids never removed whatever their age (e.g. the generation just acked). */
  protect?: ReadonlyArray<string>;
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
 * reason (`kept: among newest 3`, `kept: newest verified`, `removed: beyond newest 3`).
 *
 * - The newest `keep` generations are kept, verified or not: an unverified generation counts towards
 *   `keep` (it is newer than what it would otherwise displace, and removing it is not ours to decide).
 * - The newest verified generation is always kept, even when that keeps more than `keep`.
 * - Ids in `protect` are always kept.
 * - With no verified generation at all nothing is removed: there is no known-good generation to fall
 *   back on, so deleting anything could leave no recovery point.
 *
 * Throws on a policy that could delete everything (`keep` < 1 or not an integer), on an id that is not
 * a generation id, and on a duplicated id — all signs that the caller listed the wrong thing.
 */
export function planRetention(
  generations: ReadonlyArray<RetentionCandidate>,
  policy: RetentionPolicy,
): RetentionPlan {
  const { keep } = policy;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new RangeError(`retention policy must keep at least 1 generation (got ${String(keep)})`);
  }
  const verified = new Map<string, boolean>();
  for (const g of generations) {
    if (!isGenerationId(g.id)) throw new RangeError(`not a generation id: ${JSON.stringify(g.id)}`);
    if (verified.has(g.id)) throw new RangeError(`generation listed twice: ${g.id}`);
    verified.set(g.id, g.verified);
  }
  const protect = new Set(policy.protect ?? []);
  const newestFirst = sortNewestFirst([...verified.keys()]);
  const newestVerified = newestFirst.find((id) => verified.get(id) === true);

  const plan: RetentionPlan = { keep: [], remove: [] };
  newestFirst.forEach((id, index) => {
    if (index < keep) plan.keep.push({ id, reason: `kept: among newest ${keep}` });
    else if (id === newestVerified) plan.keep.push({ id, reason: 'kept: newest verified' });
    else if (protect.has(id)) plan.keep.push({ id, reason: 'kept: protected' });
    else if (newestVerified === undefined) plan.keep.push({ id, reason: 'kept: no verified generation' });
    else plan.remove.push({ id, reason: `removed: beyond newest ${keep}` });
  });
  return plan;
}
