import { join } from 'node:path';
import type { SourceConfig, StreamName } from '../config/schema.js';
import { formatMetrics, planJobMetrics } from '../core/metrics.js';
import { batonVersion } from '../version.js';
import { describeStores } from './list.js';

/**
 * `baton_handover_<stream>.prom`: what waits in a source stream's handover (and, for data, what its
 * source store holds): counts and the newest generation's time. Written by `source backup` and, in
 * `metrics.textfileDir`, rewritten by the gate after each ack, so an acked generation leaves the
 * count at once rather than at the next backup.
 */
export function handoverMetricsName(stream: StreamName): string {
  return `baton_handover_${stream}.prom`;
}

export async function handoverMetricsText(config: SourceConfig, stream: StreamName): Promise<string> {
  const dirs =
    stream === 'data'
      ? [
          { store: 'handover' as const, dir: config.streams.data.handover },
          { store: 'source_store' as const, dir: config.streams.data.store },
        ]
      : config.streams.logs
        ? [{ store: 'handover' as const, dir: config.streams.logs.handover }]
        : [];
  const { stores } = await describeStores(dirs);
  return formatMetrics(
    planJobMetrics(
      stream === 'data' ? 'handover_data' : 'handover_logs',
      [
        {
          source: config.name,
          stream,
          ran: false,
          ok: true,
          durationSeconds: 0,
          finishedAt: new Date(0),
          stores,
          newest: undefined,
        },
      ],
      [],
      { appDowntime: false, version: batonVersion },
    ),
  );
}

/** Where the gate refreshes the handover metrics: the textfile copy (the stateDir is root's only). */
export function handoverMetricsTextfile(config: SourceConfig, stream: StreamName): string | undefined {
  const dir = config.metrics.textfileDir;
  return dir === undefined ? undefined : join(dir, handoverMetricsName(stream));
}
