import { formatGenerationId, isGenerationId, parseGenerationId } from '../generation/names.js';

/** How far a stored id may lie ahead of the clock before the run refuses (a clock problem). */
export const MAX_ID_SKEW_MS = 10 * 60_000;

export type NextGenerationId =
  | { ok: true; id: string }
  /** the newest stored id is more than `maxSkewMs` ahead of `now`: the operator must fix the clock */
  | { ok: false; latest: string; aheadMs: number };

/**
 * The new generation's id in constant time: this second, or one second after the newest id
 * already taken (a rerun within the same second, or a clock that stepped back a little), so ids
 * always grow. Refuses when the newest taken id lies more than `maxSkewMs` ahead of `now`: a
 * clock that once ran ahead (or a planted id) must be seen by the operator, not followed.
 * `taken` holds well-formed ids (others are ignored).
 */
export function nextGenerationId(
  now: Date,
  taken: Iterable<string>,
  maxSkewMs: number = MAX_ID_SKEW_MS,
): NextGenerationId {
  let latest: string | undefined;
  for (const id of taken) if (isGenerationId(id) && (latest === undefined || id > latest)) latest = id;
  const second = Math.floor(now.getTime() / 1000) * 1000;
  if (latest === undefined) return { ok: true, id: formatGenerationId(new Date(second)) };
  const latestAt = (parseGenerationId(latest) as Date).getTime();
  const aheadMs = latestAt - now.getTime();
  if (aheadMs > maxSkewMs) return { ok: false, latest, aheadMs };
  const next = formatGenerationId(new Date(Math.max(second, latestAt + 1000)));
  // 9999-12-31T235959Z has no successor in this format (only reachable with a clock that far ahead)
  if (!isGenerationId(next)) return { ok: false, latest, aheadMs };
  return { ok: true, id: next };
}
