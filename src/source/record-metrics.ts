import type { SourceConfig, StreamName } from '../config/schema.js';
import type { StreamRunFacts } from '../core/metrics.js';
import { oneLine } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { writeJobMetrics } from '../adapters/metrics.js';
import { describeStores } from '../generation/list.js';
import { join } from 'node:path';
import { lookupUser } from '../adapters/accounts.js';
import { writeFileAtomic } from '../adapters/fsx.js';
import {
  handoverMetricsName,
  handoverMetricsText,
  handoverMetricsTextfile,
} from '../generation/handover-metrics.js';

/**
 * After a `source backup` run (ok or not): `<stateDir>/metrics/baton_source_backup.prom` (and a copy
 * in `metrics.textfileDir`), per stream: the run's result and duration, the last success time, the
 * newest generation's size and app downtime; and per stream `baton_handover_<stream>.prom` (counts
 * and newest times of the handover and source store), its textfile copy owned by the stream user so
 * the gate can refresh it after an ack.
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
      // the store counts live in baton_handover_<stream>.prom, which the gate refreshes after an ack
      stores: [],
      newest: (await describeStores(dirs)).newest,
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
  await recordHandoverMetrics(config, log);
}

async function recordHandoverMetrics(config: SourceConfig, log: Logger): Promise<void> {
  for (const [stream, s] of [
    ['data', config.streams.data],
    ['logs', config.streams.logs],
  ] as const) {
    if (s === undefined) continue;
    try {
      const text = await handoverMetricsText(config, stream);
      await writeFileAtomic(join(config.stateDir, 'metrics', handoverMetricsName(stream)), text, 0o644);
      const textfile = handoverMetricsTextfile(config, stream);
      const owner = await lookupUser(s.user);
      if (textfile !== undefined) await writeFileAtomic(textfile, text, 0o644, owner && { owner });
    } catch (e) {
      log.error({ step: 'metrics' }, `could not write the ${stream} handover metrics: ${oneLine(e)}`);
    }
  }
}
