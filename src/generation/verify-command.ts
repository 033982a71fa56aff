import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { SinkConfig, StreamName } from '../config/schema.js';
import { errnoCode } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import { clearBadMark, markGenerationBad } from '../sink/bad-marks.js';
import { listGenerations } from './list.js';
import { readGenerationMeta, verifyGeneration, type VerifyProblem } from './verify.js';
import { sinkPaths } from '../sink/state.js';
import { createProgress } from '../adapters/progress.js';

export interface VerifyTarget {
  dir: string;
  /** what the generation must claim in meta.json (known when it was found in a configured store) */
  expect?: { id: string; source: string; stream: StreamName };
  /** `handover`, `source store`, `sink store` — or undefined for a directory named on the command line */
  store?: string;
}

export interface GenerationCheck {
  dir: string;
  store: string | undefined;
  ok: boolean;
  entries: number;
  files: number;
  bytes: number;
  hashed: number;
  problems: VerifyProblem[];
}

const STREAMS: readonly StreamName[] = ['data', 'logs'];

/**
 * Every complete generation in the stores of a config, oldest first per store: on a source the
 * handovers and the source store, on a sink every source/stream directory of the sink store
 * (configured or not: an old source's generations are still backups).
 */
export async function listConfiguredGenerations(loaded: LoadedConfig): Promise<VerifyTarget[]> {
  const out: VerifyTarget[] = [];
  const add = async (store: string, dir: string, source: string, stream: StreamName) => {
    for (const g of await listGenerations(dir))
      out.push({ dir: g.dir, store, expect: { id: g.id, source, stream } });
  };
  if (loaded.kind === 'source') {
    const c = loaded.config;
    await add('handover', c.streams.data.handover, c.name, 'data');
    await add('source store', c.streams.data.store, c.name, 'data');
    if (c.streams.logs) await add('handover', c.streams.logs.handover, c.name, 'logs');
    return out;
  }
  const c = loaded.config;
  const sources = new Set(c.sources.map((s) => s.name));
  for (const name of await readdirOrEmpty(c.store)) if (!name.startsWith('.')) sources.add(name);
  for (const source of [...sources].sort()) {
    for (const stream of STREAMS)
      await add('sink store', sinkPaths(c, source, stream).streamDir, source, stream);
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
 * Checks each generation against its manifest (presence, types, sizes, link targets; every byte
 * with `deep`), one generation after the other; files are hashed many at once on worker threads
 * (verifyGeneration's default). `onResult` sees each result as it is known (for output while a
 * long run goes on).
 */
export async function verifyGenerations(
  targets: readonly VerifyTarget[],
  opts: { deep: boolean; onResult?: (c: GenerationCheck) => void; progress?: boolean },
): Promise<GenerationCheck[]> {
  const out: GenerationCheck[] = [];
  for (const t of targets) {
    // hashing progress against the generation's own byte count (meta.json), on a terminal only
    // never follows a symlink nor reads past 1 MiB: the generation is not verified yet
    const meta = await readGenerationMeta(t.dir);
    const total = typeof meta === 'string' ? 0 : meta.bytes;
    const bar = createProgress(`verify ${basename(t.dir)}`, opts.deep && opts.progress === true && total > 0);
    let hashedBytes = 0;
    const r = await verifyGeneration({
      dir: t.dir,
      hashes: opts.deep,
      onHashed: (n) => {
        hashedBytes += n;
        bar.update(hashedBytes, total);
      },
      ...(t.expect ? { expect: t.expect } : {}),
    });
    bar.stop();
    const c: GenerationCheck = {
      dir: t.dir,
      store: t.store,
      ok: r.ok,
      entries: r.entries,
      files: r.files,
      bytes: r.bytes,
      hashed: r.hashed,
      problems: r.problems,
    };
    opts.onResult?.(c);
    out.push(c);
  }
  return out;
}

/** Text lines for one result: `ok  DIR (…)` or `FAIL DIR` and one indented line per problem. */
export function renderCheck(c: GenerationCheck, deep: boolean): string {
  const counts = `${c.files} files, ${c.bytes} bytes${deep ? `, ${c.hashed} hashed` : ''}`;
  if (c.ok) return `ok    ${c.dir}  (${counts})\n`;
  const lines = [`FAIL  ${c.dir}  (${c.problems.length} problem${c.problems.length === 1 ? '' : 's'})`];
  for (const p of c.problems) lines.push(`      ${p.kind}: ${p.path}: ${p.detail}`);
  return `${lines.join('\n')}\n`;
}

/** The one-line summary of failed checks, or undefined when all passed. */
export function summarizeFailures(checks: readonly GenerationCheck[]): string | undefined {
  const failed = checks.filter((c) => !c.ok);
  if (failed.length === 0) return undefined;
  const first = failed[0]?.problems[0];
  return (
    `${failed.length} of ${checks.length} generation(s) failed: ${failed.map((c) => c.dir).join(', ')}` +
    (first ? ` (first: ${first.kind}: ${first.path})` : '')
  );
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
      config.alerts.mail,
      join(config.stateDir, 'pending-alerts'),
      {
        subject: alertSubject(
          'sink',
          `verify found ${marked.length} damaged generation(s) in the sink store`,
        ),
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
