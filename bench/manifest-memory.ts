/**
 * Peak memory of reading a manifest (issue 10, hole 6): a large manifest of long directory paths is
 * read in a fresh process three ways, and each one's peak RSS is reported against the first:
 *
 *   lines     the same file through the plain line reader (readLines), nothing kept: the baseline
 *   manifest  baton's readManifest (parse + the sequence check, constant memory)
 *   set       the sequence check as it was before: every directory path kept in a Set
 *
 *   npm run bench:manifest-memory                   # ~512 MiB manifest
 *   node --import tsx bench/manifest-memory.ts --mib 64 --dir /var/tmp --out FILE
 *
 * The target: `manifest` stays within 2.5× the baseline whatever the manifest's size (`set` grows
 * with it). Exit 1 when the target is missed. Measured here (node 20, 2 cores): 32 / 128 / 400 MiB
 * manifests gave readManifest 151 / 179 / 182 MiB (1.56× / 1.74× / 1.81× the line reader, whose
 * own peak is ~100 MiB: the parse's short-lived garbage, not a growing set) and the Set-based check
 * 173 / 312 / 588 MiB.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { runProcess } from '../src/adapters/run.js';
import { readLines } from '../src/adapters/fsx.js';
import { readManifest } from '../src/generation/manifest-file.js';
import {
  compareTreeOrder,
  DEFAULT_MANIFEST_LIMITS,
  MANIFEST_HEADER,
  parseManifestLine,
  type ManifestEntry,
} from '../src/core/manifest.js';

const SELF = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;
const TARGET_RATIO = 2.5;
type Mode = 'lines' | 'manifest' | 'set';
const MODES: readonly Mode[] = ['lines', 'manifest', 'set'];

/** Chains of nested directories with 200-byte names: paths up to ~3.9 KiB, every one a directory. */
async function writeManifest(file: string, bytes: number): Promise<{ entries: number; bytes: number }> {
  const out = createWriteStream(file);
  const name = 'n'.repeat(200);
  let written = 0;
  let entries = 0;
  const put = async (s: string) => {
    written += Buffer.byteLength(s);
    if (!out.write(s)) await once(out, 'drain');
  };
  await put(`${MANIFEST_HEADER}\n`);
  for (let chain = 0; written < bytes; chain++) {
    let path = `c${String(chain).padStart(9, '0')}`;
    const lines: string[] = [];
    for (let depth = 0; depth < 19; depth++) {
      lines.push(`d 0755 0 0 - - 1700000000.000000000 4096 - ${path}\n`);
      path = `${path}/${name}${String(depth).padStart(2, '0')}`;
    }
    entries += lines.length;
    await put(lines.join(''));
  }
  out.end();
  await once(out, 'close');
  return { entries, bytes: written };
}

/** The check before hole 6 was fixed, for comparison only. */
async function readWithSet(file: string): Promise<number> {
  const dirs = new Set<string>();
  let prev: ManifestEntry | undefined;
  let n = 0;
  for await (const line of readLines(file, DEFAULT_MANIFEST_LIMITS.maxPathBytes * 6 + 512)) {
    if (line === MANIFEST_HEADER) continue;
    const r = parseManifestLine(line);
    if (!r.ok) throw new Error(r.error);
    const e = r.entry;
    if (prev && compareTreeOrder(prev.path, e.path) >= 0) throw new Error('order');
    const i = e.path.lastIndexOf(0x2f);
    if (i >= 0 && !dirs.has(e.path.subarray(0, i).toString('latin1'))) throw new Error('orphan');
    if (e.type === 'd') dirs.add(e.path.toString('latin1'));
    prev = e;
    n++;
  }
  return n;
}

async function child(mode: Mode, file: string): Promise<void> {
  let n = 0;
  const t = performance.now();
  if (mode === 'lines') {
    for await (const line of readLines(file, DEFAULT_MANIFEST_LIMITS.maxPathBytes * 6 + 512))
      if (line.length > 0) n++;
  } else if (mode === 'manifest') {
    for await (const e of readManifest(file)) if (e.path.length > 0) n++;
  } else {
    n = await readWithSet(file);
  }
  const ms = Math.round(performance.now() - t);
  process.stdout.write(
    `${JSON.stringify({ mode, lines: n, ms, maxRssKiB: process.resourceUsage().maxRSS })}\n`,
  );
}

interface Sample {
  mode: Mode;
  lines: number;
  ms: number;
  maxRssKiB: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      file: { type: 'string' },
      mib: { type: 'string', default: '512' },
      dir: { type: 'string', default: '/var/tmp' },
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
    },
  });
  if (values.child) {
    if (!MODES.includes(values.child as Mode) || !values.file) throw new Error('--child MODE --file FILE');
    await child(values.child as Mode, values.file);
    return;
  }
  const mib = values.quick ? 32 : Number(values.mib);
  if (!Number.isFinite(mib) || mib <= 0) throw new Error('--mib must be a positive number');
  const dir = await mkdtemp(join(values.dir, 'baton-manifest-memory-'));
  try {
    const file = join(dir, 'manifest');
    const made = await writeManifest(file, mib * MiB);
    const size = (await stat(file)).size;
    const samples: Sample[] = [];
    for (const mode of MODES) {
      const r = await runProcess(
        [process.execPath, '--import', 'tsx', SELF, '--child', mode, '--file', file],
        { tailBytes: 64 * 1024 },
      );
      if (r.code !== 0)
        throw new Error(`${mode}: exit ${r.code}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
      samples.push(JSON.parse(r.stdout.trim()) as Sample);
    }
    const base = samples[0]?.maxRssKiB ?? 1;
    const rows = samples.map(
      (s) =>
        `| ${s.mode} | ${(s.maxRssKiB / 1024).toFixed(1)} MiB | ${(s.maxRssKiB / base).toFixed(2)}× | ${s.ms} ms |`,
    );
    const ours = samples.find((s) => s.mode === 'manifest');
    const ratio = (ours?.maxRssKiB ?? Infinity) / base;
    const ok =
      ratio <= TARGET_RATIO && samples.every((s) => s.lines === made.entries + (s.mode === 'lines' ? 1 : 0));
    const report = [
      `## Manifest reading, peak RSS (issue 10, hole 6)`,
      '',
      `${(size / MiB).toFixed(0)} MiB manifest, ${made.entries} directories with paths up to ~3.9 KiB, ` +
        `node ${process.version}. Each mode in a fresh process; ratio against the plain line reader.`,
      '',
      '| mode | peak RSS | vs lines | time |',
      '|---|---|---|---|',
      ...rows,
      '',
      `target: readManifest ≤ ${TARGET_RATIO}× the line reader: ${ratio.toFixed(2)}× — ${ok ? 'met' : 'MISSED'}`,
      '',
    ].join('\n');
    process.stdout.write(report);
    if (values.out) await writeFile(values.out, report);
    if (!ok) process.exitCode = 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
