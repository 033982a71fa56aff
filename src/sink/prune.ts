import { planRetention, type RetentionPlan } from '../core/retention.js';
import { listGenerations } from '../adapters/generations.js';
import { removeTreeSafely } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { clearBadMark, listBadMarks } from './bad-marks.js';

export interface SinkRetention {
  /** verified generations kept */
  keep: number;
  /** milliseconds: younger generations are never pruned by count */
  keepWithin?: number | undefined;
  now: Date;
}

/**
 * Step 2.b (second half): drops the oldest generations beyond `keep` verified ones in the sink
 * store. Every published generation was verified before it was published, so all count as verified
 * unless a later `baton verify` marked it bad (`.bad/<id>`); the newest verified is never removed.
 * Each removal renames first, so a crash never leaves half a generation under its real name.
 */
export async function pruneSinkStream(
  streamDir: string,
  retention: SinkRetention,
  protect: readonly string[],
  log: Logger,
): Promise<RetentionPlan> {
  const gens = await listGenerations(streamDir);
  const bad = await listBadMarks(streamDir);
  const plan = planRetention(
    gens.map((g) => ({ id: g.id, verified: !bad.has(g.id) })),
    {
      keep: retention.keep,
      protect,
      ...(retention.keepWithin === undefined ? {} : { keepWithin: retention.keepWithin, now: retention.now }),
    },
  );
  for (const r of plan.remove) {
    await removeTreeSafely(streamDir, r.id);
    if (bad.has(r.id)) await clearBadMark(streamDir, r.id);
    log.info({ step: 'prune', id: r.id, reason: r.reason }, `pruned ${r.id}`);
  }
  return plan;
}
