import { planRetention, retentionReference, type RetentionPlan } from '../core/retention.js';
import { parseGenerationId, sortNewestFirst } from '../generation/names.js';
import { listGenerations } from '../generation/list.js';
import { removeTreeSafely } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { clearBadMark, listBadMarks } from './bad-marks.js';

export interface SinkRetention {
  /** verified generations kept */
  keep: number;
  /** milliseconds: generations this close to the newest one are never pruned by count */
  keepWithin?: number | undefined;
}

/**
 * Step 2.b (second half): drops the oldest generations beyond `keep` verified ones in the sink
 * store. Every published generation was verified before it was published, so all count as verified
 * unless a later `baton verify` marked it bad (`.bad/<id>`); the newest verified is never removed.
 * Each removal renames first, so a crash never leaves half a generation under its real name.
 *
 * `keepWithin` is counted back from the newest generation's id, not from the sink's clock: a sink
 * clock that is wrong (years behind: every id "in the future" would count as young and nothing would
 * ever be pruned; ahead: nothing would count as young) or jumps during a run changes nothing here.
 * Ids come from the source, which keeps them increasing whatever its clock does. With `future`,
 * ids further ahead of the sink clock than the skew (a planted `9999-…` id) are kept but neither
 * counted nor used as the reference.
 */
export async function pruneSinkStream(
  streamDir: string,
  retention: SinkRetention,
  protect: readonly string[],
  log: Logger,
  /** the sink clock and allowed skew: ids further ahead neither count nor anchor keepWithin */
  future?: { clock: Date; skewMs: number },
): Promise<RetentionPlan> {
  const gens = await listGenerations(streamDir);
  const bad = await listBadMarks(streamDir);
  const [newest] = sortNewestFirst(gens.map((g) => g.id));
  const reference = future
    ? retentionReference(
        gens.map((g) => g.id),
        future.clock,
        future.skewMs,
      )
    : newest === undefined
      ? undefined
      : parseGenerationId(newest);
  const plan = planRetention(
    gens.map((g) => ({ id: g.id, verified: !bad.has(g.id) })),
    {
      keep: retention.keep,
      protect,
      ...(future ? { futureAfter: new Date(future.clock.getTime() + future.skewMs) } : {}),
      ...(retention.keepWithin === undefined || reference === undefined
        ? {}
        : { keepWithin: retention.keepWithin, now: reference }),
    },
  );
  for (const r of plan.remove) {
    await removeTreeSafely(streamDir, r.id);
    if (bad.has(r.id)) await clearBadMark(streamDir, r.id);
    log.info({ step: 'prune', id: r.id, reason: r.reason }, `pruned ${r.id}`);
  }
  return plan;
}
