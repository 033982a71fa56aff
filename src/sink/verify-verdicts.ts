import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SinkConfig, StreamName } from '../config/schema.js';
import { errnoCode } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import {
  listStoreTargets,
  renderCheck,
  type GenerationCheck,
  type VerifyTarget,
} from '../generation/verify-command.js';
import { clearBadMark, markGenerationBad } from './bad-marks.js';
import { sinkPaths } from './state.js';

const STREAMS: readonly StreamName[] = ['data', 'logs'];

/**
 * Every complete generation in the sink store, oldest first per source/stream directory (configured
 * or not: an old source's generations are still backups).
 */
export async function listSinkStoreTargets(c: SinkConfig): Promise<VerifyTarget[]> {
  const out: VerifyTarget[] = [];
  const sources = new Set(c.sources.map((s) => s.name));
  for (const name of await readdirOrEmpty(c.store)) if (!name.startsWith('.')) sources.add(name);
  for (const source of [...sources].sort()) {
    for (const stream of STREAMS)
      out.push(
        ...(await listStoreTargets('sink store', sinkPaths(c, source, stream).streamDir, source, stream)),
      );
  }
  return out;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Bit rot (issue 5, case 24): a sink store generation that failed is marked bad (`.bad/<id>` next to
 * it, see src/sink/bad-marks.ts) so retention no longer counts it as verified, and an alert is mailed;
 * a generation that passed a deep check loses its mark. Other checks (handover, named dirs) are left
 * alone. Returns the generation dirs marked and cleared.
 */
export async function recordSinkVerdicts(
  config: SinkConfig,
  checks: readonly GenerationCheck[],
  opts: { deep: boolean; now: Date; log: Logger },
): Promise<{ marked: string[]; cleared: string[] }> {
  const marked: string[] = [];
  const cleared: string[] = [];
  for (const c of checks) {
    if (c.store !== 'sink store') continue;
    const streamDir = dirname(c.dir);
    const id = basename(c.dir);
    if (!c.ok) {
      await markGenerationBad(
        streamDir,
        id,
        c.problems.map((p) => `${p.kind}: ${p.path}: ${p.detail}`),
        opts.now,
      );
      opts.log.warn({ step: 'verify', dir: c.dir }, `marked ${c.dir} bad: it no longer counts as verified`);
      marked.push(c.dir);
    } else if (opts.deep && (await clearBadMark(streamDir, id))) {
      opts.log.info({ step: 'verify', dir: c.dir }, `${c.dir} passed a deep check: bad mark removed`);
      cleared.push(c.dir);
    }
  }
  if (marked.length > 0) {
    const failed = checks.filter((c) => marked.includes(c.dir));
    await sendAlert(
      config.alerts,
      join(config.stateDir, 'pending-alerts'),
      {
        subject: alertSubject(
          'sink',
          `verify found ${marked.length} damaged generation(s) in the sink store`,
        ),
        reportsFailure: true,
        text:
          `baton verify${opts.deep ? ' --deep' : ''} found damage in the sink store:\n\n` +
          failed.map((c) => renderCheck(c, opts.deep)).join('') +
          `\nThese generations are marked bad (.bad/<id> in their stream directory): retention no longer ` +
          `counts them as verified and keeps older verified generations instead. A later passing ` +
          `\`baton verify --deep\` removes the mark.\n` +
          alertFooter(),
      },
      opts.log,
    );
  }
  return { marked, cleared };
}
