/**
 * The benchmark's results as written: the report assembled from what the sets collected (merged with
 * an earlier run's --json, notes for missed targets), RESULTS.md and the --json file, the machine.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { runProcess } from '../src/adapters/run.js';
import { GNU_TIME, loadSeen } from './measure.js';
import { UsageError, type Options } from './options.js';
import type { Collected } from './sets.js';
import { retried } from './steps.js';
import {
  FIGURE_IDS,
  judge,
  median,
  renderReport,
  type Figure,
  type MachineInfo,
  type Report,
} from './report.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));

const sideSchema = z.object({
  label: z.string(),
  values: z.array(
    z
      .number()
      .nullable()
      .transform((v) => v ?? Number.NaN),
  ),
  unit: z.enum(['ms', 'MiB/s', 'MiB', 'µs/file']),
});
const figureSchema = z.object({
  id: z.string(),
  title: z.string(),
  baton: sideSchema.optional(),
  plain: sideSchema.optional(),
  target: z.object({ op: z.enum(['le', 'ge']), value: z.number(), absolute: z.boolean().optional() }),
  missing: z.string().optional(),
  detail: z.string().optional(),
});
/** What --json saves and --merge reads back. */
export const savedSchema = z.object({
  date: z.string(),
  figures: z.array(figureSchema),
  dataset: z.array(z.string()),
  details: z.array(z.string()),
  loadSeen: z.array(z.number()),
});
export type Saved = z.infer<typeof savedSchema>;

export async function loadSaved(file: string): Promise<Saved> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--merge ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const r = savedSchema.safeParse(raw);
  if (!r.success)
    throw new UsageError(
      `--merge ${file}: not a benchmark --json file (${r.error.issues[0]?.message ?? ''})`,
    );
  return r.data;
}

// Why a figure misses its target, in this code base (shown only when it does). Keep in step with the code.
const KNOWN_CAUSES: Record<string, string> = {
  '1a': 'the downtime is the two mirror rsyncs (see the breakdown); a local rsync copies every changed file whole (`--whole-file` is its default between local paths), baton’s refresh and the bare one alike.',
  '1b': 'the change appends to every log file (8 × 25 MiB) and to one 50–200 MiB database file, and a local rsync copies a changed file whole (`--whole-file`, its default between local paths): about 250–400 MiB move while the app is down, against 1.7 GiB for the first full backup, so the ratio sits near 0.1–0.2 by construction, for the bare refresh as much as for baton. Only copying less while the app is down gets safely under 0.1, e.g. cloning the data with reflinks where the filesystem can.',
  '2': 'verification reads every byte: files are hashed as rsync completes them (src/sink/early-hash.ts) on two worker threads, but on two cores the hashing competes with rsync and ssh for the CPU; what is left after the transfer is the walk over the tree and the files rsync finished last (see the breakdown).',
  '3': 'fixed costs weigh on a small change: the sink’s own start-up and three of the gate (list-head, tree, ack; the gate loads its own chunk of the bundle), the list round trip (which brings the manifest), its precheck, the walk that compares every file’s inode with the previous generation’s, and the ack with its challenge (see the breakdown).',
  '3b': 'as for 3, and more so: with 0.1 % changed the transfer is short and the fixed costs (node starts on both sides, three ssh sessions, the walk after the transfer, the ack) are most of the time.',
  '4': '`baton verify --deep` hashes on two worker threads with 32 files in flight; its start-up and the walk over the tree count against it (see the detail line for the rate without start-up).',
  '5a': 'node alone is the peak (the rsync children are small): about 55 MiB of Node runtime and baton’s bundled code before any work starts, two hashing worker threads of about 8 MiB each, and the V8 heap while the build allocates fast (young generation capped by `--max-semi-space-size=4`, src/cli/node-flags.ts).',
  '5b': 'as for 5a: the Node runtime and baton’s code, two hashing worker threads and the V8 heap; memory does not grow with the file count (both manifests are streamed, the table of hashes taken during the transfer is capped at 25,000 files).',
  '5c': 'as for 5a: node alone is the peak; memory does not grow with the file count (the previous manifest is streamed, directories are kept as strings), the rest is the V8 heap under a high allocation rate.',
  '5d': 'as for 5b: node alone is the peak; the manifests are streamed (a link base is read alongside the walk with `ManifestCursor`), so what remains is the V8 heap under the allocation rate of a million manifest lines and lstat results.',
  '6a': 'per file, baton adds what rsync does not do: a manifest line parsed and checked, an lstat in the walk, and the file read and hashed (during the transfer where it can).',
  '6b': 'per file, baton adds a verification pass after the transfer that rsync does not do: a walk step, two manifest lines parsed (the new one and the link base’s) and an lstat of the link base’s file.',
  '6c': 'per file, the build walks the mirror, reads the previous manifest, checks and hard-links the previous generation’s file (three system calls) and writes two manifest lines, all on one JavaScript thread; `cp -al` makes two system calls in C and writes no manifest.',
};

async function firstLine(argv: string[]): Promise<string> {
  const r = await runProcess(argv, { timeoutMs: 10_000, captureStdout: true });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}

export async function machineInfo(dir: string): Promise<Omit<MachineInfo, 'load'>> {
  const c = cpus();
  const fs = await firstLine(['findmnt', '-n', '-o', 'FSTYPE,SOURCE', '-T', dir]);
  return {
    cpus: `${c.length} × ${c[0]?.model.trim() ?? '?'}`,
    ramGiB: totalmem() / 1024 ** 3,
    fs: fs.replace(/\s+/g, ' on '),
    kernel: release(),
    node: process.version,
    rsync: (await firstLine(['rsync', '--version'])).replace(/\s+/g, ' '),
    openssh: await firstLine(['ssh', '-V']),
    sha256sum: await firstLine(['sha256sum', '--version']),
    gnuTime: existsSync(GNU_TIME)
      ? `peak RSS by ${GNU_TIME} -v`
      : `${GNU_TIME} missing (apt-get install time): peak RSS polled from /proc VmHWM`,
    code: await firstLine(['git', '-C', REPO_DIR, 'describe', '--always', '--dirty', '--abbrev=12']),
  };
}

/** What a report is made of besides the figures the sets collected. */
export interface ReportInput {
  options: Options;
  collected: Collected;
  /** an earlier run's --json (--merge): fills the figures this run did not measure */
  earlier: Saved | undefined;
  /** epoch ms when the run started */
  started: number;
  /** the command line the report names */
  command: string;
  machine: Omit<MachineInfo, 'load'>;
}

/**
 * The report of the run so far: every figure id in order (measured, taken from `earlier`, or "not
 * run"), with notes for retried measurements and for targets missed for a known cause.
 */
export function assembleReport({
  options: o,
  collected: c,
  earlier,
  started,
  command,
  machine: machineBase,
}: ReportInput): Report {
  const merged = (id: string): Figure | undefined => {
    const f = earlier?.figures.find((x) => x.id === id && x.missing === undefined);
    return f ? { ...f, title: `${f.title} (from the run of ${earlier?.date ?? '?'})` } : undefined;
  };
  const figures: Figure[] = FIGURE_IDS.map(
    (id) =>
      c.figures.get(id) ??
      merged(id) ?? {
        id,
        title: id.startsWith('5c') || id.startsWith('5d') || id.startsWith('6') ? 'scale set' : 'main set',
        target: { op: 'le', value: 1 },
        missing: 'not run',
      },
  );
  const notes = [...c.notes];
  for (const r of retried)
    notes.push(`Retried once (its first attempt failed, the figure uses the second): ${r}`);
  for (const f of figures) {
    const v = judge(f);
    if (v.kind === 'missed' && KNOWN_CAUSES[f.id])
      notes.push(`**${f.id}** missed: ${KNOWN_CAUSES[f.id] ?? ''}`);
  }
  const ls = [...loadSeen, ...(earlier?.loadSeen ?? [])].sort((a, b) => a - b);
  const machine: MachineInfo = {
    ...machineBase,
    load: ls.length
      ? `1-minute load average when the ${ls.length} measurements started: median ${median(ls).toFixed(1)}, max ${(ls.at(-1) ?? 0).toFixed(1)} (${cpus().length} cores; above that, other work competed for the CPU)`
      : 'load: not sampled',
  };
  return {
    title: 'baton benchmark',
    date: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
    mode: o.quick
      ? 'quick (smoke test: 1 run, small sets, not a measurement)'
      : `full, ${o.runs} runs per figure${o.scale ? `, scale set ${o.scaleRuns} run(s)` : ''}`,
    command,
    durationS: (Date.now() - started) / 1000,
    machine,
    dataset: [...c.dataset, ...(earlier?.dataset.map((d) => `(run of ${earlier.date}) ${d}`) ?? [])],
    figures,
    details: [...c.details, ...(earlier?.details.map((d) => `(run of ${earlier.date}) ${d}`) ?? [])],
    notes,
  };
}

/** Writes the report to `--out` (RESULTS.md) and, with `--json`, the raw figures for a later `--merge`. */
export async function writeResults(o: Options, r: Report, c: Collected): Promise<void> {
  await writeFile(o.out, renderReport(r));
  if (o.json !== undefined) {
    const saved: Saved = {
      date: r.date,
      figures: [...c.figures.values()],
      dataset: c.dataset,
      details: c.details,
      loadSeen,
    };
    await writeFile(o.json, `${JSON.stringify(saved, null, 2)}\n`);
  }
}
