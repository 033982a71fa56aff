import { join } from 'node:path';
import type { AlertChannels, StreamName } from '../config/schema.js';
import { judgeSizeAnomaly, type GenerationSize } from '../core/anomaly.js';
import { generationMetaSchema } from '../core/meta.js';
import { readJsonIfExists } from '../adapters/fsx.js';
import { listGenerations } from '../generation/list.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import type { Logger } from '../adapters/log.js';
import { listBadMarks } from './bad-marks.js';
import { META_JSON } from '../generation/names.js';

export interface AnomalyCheckInput {
  source: string;
  stream: StreamName;
  streamDir: string;
  /** the generation just verified (not yet published) and what verify counted in it */
  id: string;
  size: GenerationSize;
  dropPercent: number;
  alerts: AlertChannels;
  pendingAlerts: string;
  log: Logger;
}

/**
 * Case "retention under attack": compares a newly verified generation with the previous verified one
 * in the sink store (newest older id, not marked bad). A drop of more than `dropPercent` in files or
 * bytes mails a "possible data loss or attack" alert and returns a warning: the caller then publishes
 * and acks (the generation is verified) but prunes nothing this run. Undefined when all looks normal.
 */
export async function checkSizeAnomaly(input: AnomalyCheckInput): Promise<string | undefined> {
  const bad = await listBadMarks(input.streamDir);
  const previous = (await listGenerations(input.streamDir))
    .filter((g) => g.id < input.id && !bad.has(g.id))
    .at(-1);
  if (!previous) return undefined;
  const meta = generationMetaSchema.safeParse(
    await readJsonIfExists(join(previous.dir, META_JSON)).catch(() => undefined),
  );
  if (!meta.success) {
    input.log.warn({ step: 'anomaly' }, `no readable meta.json in ${previous.id}: size not compared`);
    return undefined;
  }
  const verdict = judgeSizeAnomaly(meta.data, input.size, input.dropPercent);
  if (!verdict.anomalous) return undefined;
  const warning =
    `possible data loss or attack: ${input.id} against ${previous.id}: ${verdict.reasons.join(', ')}; ` +
    `retention frozen for ${input.source}/${input.stream} in this run`;
  input.log.warn({ step: 'anomaly', id: input.id, previous: previous.id, reasons: verdict.reasons }, warning);
  await sendAlert(
    input.alerts,
    input.pendingAlerts,
    {
      subject: alertSubject('sink', `possible data loss or attack: ${input.source}/${input.stream} shrank`),
      text:
        `The new ${input.stream} generation ${input.id} of ${input.source} is much smaller than the previous ` +
        `verified one (${previous.id}):\n\n  ${verdict.reasons.join('\n  ')}\n\n` +
        `It was verified, published and acked, but nothing was pruned for this stream in this run, so ` +
        `the older generations are kept. Check the source: deleted data, a broken mount, or an attack.\n` +
        `(threshold: anomalyDropPercent ${input.dropPercent})\n` +
        alertFooter(),
    },
    input.log,
  );
  return warning;
}
