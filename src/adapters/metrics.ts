import { constants as fsConstants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { oneLine, errnoCode } from '../errors.js';
import {
  formatMetrics,
  parseMetrics,
  planJobMetrics,
  type MetricsJob,
  type StreamRunFacts,
} from '../core/metrics.js';
import { mkdirp, writeFileAtomic } from './fsx.js';
import type { Logger } from './log.js';
import { batonVersion } from '../version.js';

/** `<stateDir>/metrics/baton_<job>.prom`: always written; the previous run's values are read back from it. */
export function metricsFile(stateDir: string, job: MetricsJob): string {
  return join(stateDir, 'metrics', `baton_${job}.prom`);
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
      planJobMetrics(opts.job, opts.streams, parseMetrics(previous), {
        appDowntime: opts.appDowntime,
        version: batonVersion,
      }),
    );
    await mkdirp(join(opts.stateDir, 'metrics'), 0o755);
    await writeFileAtomic(file, text, 0o644);
    if (opts.textfileDir !== undefined)
      await writeFileAtomic(join(opts.textfileDir, `baton_${opts.job}.prom`), text, 0o644);
  } catch (e) {
    opts.log.error({ step: 'metrics' }, `could not write the metrics: ${oneLine(e)}`);
  }
}

/**
 * Replaces the content of a metrics file this process owns, in place (the gate, as the stream user,
 * cannot create files in the textfile directory; `source backup` hands it this one file). Refuses
 * anything but a regular file owned by this user, never follows a symlink. Returns false when the
 * file is not there or not ours (nothing written).
 */
export async function rewriteOwnMetricsFile(file: string, text: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(file, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.uid !== process.getuid?.()) return false;
    const bytes = Buffer.from(text, 'utf8');
    await fh.write(bytes, 0, bytes.length, 0);
    await fh.truncate(bytes.length);
    return true;
  } finally {
    await fh.close();
  }
}
