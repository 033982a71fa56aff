import { planRetention, type RetentionPlan } from '../core/retention.js';
import { listGenerations } from '../adapters/generations.js';
import { removeTreeSafely } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';

/**
 * Step 2.b (second half): drops the oldest generations beyond `keep` in the sink store. Every
 * published generation was verified before it was published, so all count as verified; the
 * newest is never removed. Each removal renames first, so a crash never leaves half a generation
 * under its real name.
 */
export async function pruneSinkStream(
  streamDir: string,
  keep: number,
  protect: readonly string[],
  log: Logger,
): Promise<RetentionPlan> {
  const gens = await listGenerations(streamDir);
  const plan = planRetention(
    gens.map((g) => ({ id: g.id, verified: true })),
    { keep, protect },
  );
  for (const r of plan.remove) {
    await removeTreeSafely(streamDir, r.id);
    log.info({ step: 'prune', id: r.id, reason: r.reason }, `pruned ${r.id}`);
  }
  return plan;
}
