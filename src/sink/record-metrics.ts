import type { SinkConfig, StreamName } from '../config/schema.js';
import type { StreamRunFacts } from '../core/metrics.js';
import { sinkRunRecordSchema } from '../core/run-record.js';
import { oneLine } from '../errors.js';
import { readJsonIfExists } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { writeJobMetrics } from '../adapters/metrics.js';
import { describeStores } from '../generation/list.js';
import { sinkPaths } from './state.js';

/**
 * After `sink pull STREAM`: `<stateDir>/metrics/baton_sink_pull_<stream>.prom` (and a copy in
 * `metrics.textfileDir`) for every configured source of the stream. Sources this run did not pull
 * (`--source`, held locks) keep their previous run metrics; store counts are always fresh.
 */
export async function recordPullMetrics(
  config: SinkConfig,
  stream: StreamName,
  outcomes: ReadonlyArray<{ source: string; ok: boolean; locked: boolean; waiting?: string | undefined }>,
  now: Date,
  log: Logger,
): Promise<void> {
  const streams: StreamRunFacts[] = [];
  try {
    for (const src of config.sources) {
      if (!src.streams[stream]) continue;
      const paths = sinkPaths(config, src.name, stream);
      const o = outcomes.find((x) => x.source === src.name);
      const times = sinkRunRecordSchema.safeParse(
        await readJsonIfExists(paths.lastRun).catch(() => undefined),
      );
      const startedAt = times.success ? new Date(times.data.startedAt) : now;
      const finishedAt = times.success ? new Date(times.data.finishedAt) : now;
      streams.push({
        source: src.name,
        stream,
        // a source outside its window did not run: its last success stays what it was
        ran: o !== undefined && !o.locked && o.waiting === undefined,
        ok: o?.ok ?? false,
        durationSeconds: Math.max(0, finishedAt.getTime() - startedAt.getTime()) / 1000,
        finishedAt,
        ...(await describeStores([{ store: 'sink_store', dir: paths.streamDir }])),
      });
    }
  } catch (e) {
    log.error({ step: 'metrics' }, `could not read the sink store for the metrics: ${oneLine(e)}`);
    return;
  }
  await writeJobMetrics({
    stateDir: config.stateDir,
    textfileDir: config.metrics.textfileDir,
    job: stream === 'data' ? 'sink_pull_data' : 'sink_pull_logs',
    streams,
    appDowntime: false,
    log,
  });
}
