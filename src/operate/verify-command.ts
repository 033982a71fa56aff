import { readdir } from 'node:fs/promises';
import type { LoadedConfig } from '../config/load.js';
import type { StreamName } from '../config/schema.js';
import { errnoCode } from '../errors.js';
import { listGenerations } from '../adapters/generations.js';
import { verifyGeneration, type VerifyProblem } from '../sink/verify.js';
import { sinkPaths } from '../sink/state.js';

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
 * with `deep`), one generation after the other, hashing up to 4 files at once. `onResult` sees
 * each result as it is known (for output while a long run goes on).
 */
export async function verifyGenerations(
  targets: readonly VerifyTarget[],
  opts: { deep: boolean; onResult?: (c: GenerationCheck) => void },
): Promise<GenerationCheck[]> {
  const out: GenerationCheck[] = [];
  for (const t of targets) {
    const r = await verifyGeneration({
      dir: t.dir,
      hashes: opts.deep,
      concurrency: 4,
      ...(t.expect ? { expect: t.expect } : {}),
    });
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
