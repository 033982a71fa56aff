import { basename } from 'node:path';
import type { SourceConfig, StreamName } from '../config/schema.js';
import { createProgress } from '../adapters/progress.js';
import { listGenerations } from './list.js';
import { readGenerationMeta, verifyGeneration, type VerifyProblem } from './verify.js';

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

/** Every complete generation in one store dir, oldest first, as targets that must claim `source`/`stream`. */
export async function listStoreTargets(
  store: string,
  dir: string,
  source: string,
  stream: StreamName,
): Promise<VerifyTarget[]> {
  return (await listGenerations(dir)).map((g) => ({
    dir: g.dir,
    store,
    expect: { id: g.id, source, stream },
  }));
}

/** Every complete generation in the stores of a source config: the handovers and the source store. */
export async function listSourceTargets(c: SourceConfig): Promise<VerifyTarget[]> {
  const out: VerifyTarget[] = [];
  out.push(...(await listStoreTargets('handover', c.streams.data.handover, c.name, 'data')));
  out.push(...(await listStoreTargets('source store', c.streams.data.store, c.name, 'data')));
  if (c.streams.logs)
    out.push(...(await listStoreTargets('handover', c.streams.logs.handover, c.name, 'logs')));
  return out;
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
