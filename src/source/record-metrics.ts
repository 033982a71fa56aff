import type { SourceConfig, StreamName } from '../config/schema.js';
import type { StreamRunFacts } from '../core/metrics.js';
import { oneLine } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { writeJobMetrics } from '../adapters/metrics.js';
import { describeStores } from '../generation/list.js';

/**
 * After a `source backup` run (ok or not): `<stateDir>/metrics/baton_source_backup.prom` (and a copy
 * in `metrics.textfileDir`), per stream: the run's result and duration, the last success time,
 * generation counts in the handover and source store, the newest generation's size and app downtime.
 */
export async function recordBackupMetrics(
  config: SourceConfig,
  run: { ok: boolean; startedAt: Date; finishedAt: Date },
  log: Logger,
): Promise<void> {
  const streams: StreamRunFacts[] = [];
  const add = async (stream: StreamName, dirs: Parameters<typeof describeStores>[0]) =>
    streams.push({
      source: config.name,
      stream,
      ran: true,
      ok: run.ok,
      durationSeconds: (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000,
      finishedAt: run.finishedAt,
      ...(await describeStores(dirs)),
    });
  try {
    await add('data', [
      { store: 'handover', dir: config.streams.data.handover },
      { store: 'source_store', dir: config.streams.data.store },
    ]);
    if (config.streams.logs) await add('logs', [{ store: 'handover', dir: config.streams.logs.handover }]);
  } catch (e) {
    log.error({ step: 'metrics' }, `could not read the stores for the metrics: ${oneLine(e)}`);
    return;
  }
  await writeJobMetrics({
    stateDir: config.stateDir,
    textfileDir: config.metrics.textfileDir,
    job: 'source_backup',
    streams,
    appDowntime: true,
    log,
  });
}
