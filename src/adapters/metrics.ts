import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { oneLine, errnoCode } from '../errors.js';
import {
  formatMetrics,
  parseMetrics,
  planJobMetrics,
  type MetricsJob,
  type MetricsStore,
  type StreamRunFacts,
} from '../core/metrics.js';
import { mkdirp, writeFileAtomic } from './fsx.js';
import type { Logger } from './log.js';
import { readStoreContents } from '../generation/list.js';

/** `<stateDir>/metrics/baton_<job>.prom`: always written; the previous run's values are read back from it. */
export function metricsFile(stateDir: string, job: MetricsJob): string {
  return join(stateDir, 'metrics', `baton_${job}.prom`);
}

/**
 * Generation counts per store and the newest generation (by id, over all the given stores) with its
 * meta.json: the store part of a stream's metrics.
 */
export async function describeStores(
  stores: ReadonlyArray<{ store: MetricsStore; dir: string }>,
): Promise<Pick<StreamRunFacts, 'stores' | 'newest'>> {
  const counted: Array<{ store: MetricsStore; generations: number }> = [];
  let newest: { id: string; meta: StreamRunFacts['newest'] } | undefined;
  for (const s of stores) {
    const gens = await readStoreContents(s.dir);
    counted.push({ store: s.store, generations: gens.length });
    const last = gens.at(-1);
    if (last && (newest === undefined || last.id > newest.id)) {
      newest = {
        id: last.id,
        meta: last.meta && {
          bytes: last.meta.bytes,
          bytesNew: last.meta.bytesCopied,
          downtimeMs: last.meta.downtimeMs,
        },
      };
    }
  }
  return { stores: counted, newest: newest?.meta };
}

/**
 * Writes a job's metrics file atomically into `<stateDir>/metrics/` and, when set, into
 * `textfileDir` (node-exporter's textfile collector). Never throws: metrics must not change the
 * outcome of the job they describe; a failure is logged.
 */
export async function writeJobMetrics(opts: {
  stateDir: string;
  textfileDir: string | undefined;
  job: MetricsJob;
  streams: readonly StreamRunFacts[];
  appDowntime: boolean;
  log: Logger;
}): Promise<void> {
  const file = metricsFile(opts.stateDir, opts.job);
  try {
    const previous = await readFile(file, 'utf8').catch((e: unknown) => {
      if (errnoCode(e) === 'ENOENT') return '';
      throw e;
    });
    const text = formatMetrics(
      planJobMetrics(opts.job, opts.streams, parseMetrics(previous), { appDowntime: opts.appDowntime }),
    );
    await mkdirp(join(opts.stateDir, 'metrics'), 0o755);
    await writeFileAtomic(file, text, 0o644);
    if (opts.textfileDir !== undefined)
      await writeFileAtomic(join(opts.textfileDir, `baton_${opts.job}.prom`), text, 0o644);
  } catch (e) {
    opts.log.error({ step: 'metrics' }, `could not write the metrics: ${oneLine(e)}`);
  }
}
