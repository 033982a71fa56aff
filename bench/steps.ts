/**
 * The measured steps: baton's own commands (source backup, sink pull, verify) and the plain tools they
 * are compared with (a bare rsync refresh, a bare rsync pull over the same ssh), each run once under
 * `measure` with what its log lines say about where the time went; retries and progress lines.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { generationMetaSchema } from '../src/core/meta.js';
import { baton, markSinkStore, type BenchEnv } from './env.js';
import { CommandFailed, measureOk, runOk, type Measured } from './measure.js';
import { MiB } from './options.js';

const T0 = Date.now();
export const say = (s: string) =>
  process.stderr.write(`bench: [${((Date.now() - T0) / 1000).toFixed(0)} s] ${s}\n`);
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const mib = (kib: number | undefined) =>
  kib === undefined || !Number.isFinite(kib) ? '?' : `${(kib / 1024).toFixed(0)} MiB`;
export const cpu = (m: Measured) => (m.cpuS === undefined ? '?' : `${m.cpuS.toFixed(1)} s`);
export const fmtBytes = (b: number) =>
  b >= 1024 * MiB ? `${(b / 1024 / MiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`;
export const int = (n: number) => n.toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// Running baton and the plain tools

const logLineSchema = z.looseObject({
  // `--log-format json` writes ISO times (epoch milliseconds before)
  time: z.union([z.number(), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]),
  msg: z.string().optional(),
  step: z.string().optional(),
});
type LogLine = z.infer<typeof logLineSchema>;
/** what the sink's `verified <id>` log line counts */
const verifyCounts = z.looseObject({
  hashed: z.number(),
  hashedDuringTransfer: z.number(),
  reused: z.number(),
});

function logLines(stderr: string): LogLine[] {
  const out: LogLine[] = [];
  for (const l of stderr.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const r = logLineSchema.safeParse(JSON.parse(l));
      if (r.success) out.push(r.data);
    } catch {
      /* not a log line */
    }
  }
  return out;
}

/** ms since the command started at which the first log line matching `re` was written. */
function logAt(m: Measured, lines: readonly LogLine[], re: RegExp): number | undefined {
  const l = lines.find((x) => re.test(x.msg ?? ''));
  return l ? l.time - m.startedAt : undefined;
}

const backupOutput = z.object({
  id: z.string(),
  downtimeMs: z.number(),
  generations: z.array(
    z.looseObject({
      stream: z.enum(['data', 'logs']),
      files: z.number(),
      bytes: z.number(),
      bytesCopied: z.number(),
    }),
  ),
});

export interface BackupRun {
  m: Measured;
  id: string;
  downtimeMs: number;
  files: number;
  bytes: number;
  bytesCopied: number;
  breakdown: string;
}

export async function sync(): Promise<void> {
  await runOk('sync', ['sync']);
}

export async function sourceBackup(env: BenchEnv): Promise<BackupRun> {
  await sync();
  const m = await measureOk(
    'baton source backup',
    baton('--log-format', 'json', 'source', 'backup', '--config', env.sourceConfig, '--json'),
  );
  const out = backupOutput.parse(JSON.parse(m.stdout));
  const meta = generationMetaSchema.parse(
    JSON.parse(await readFile(join(env.handoverData, out.id, 'meta.json'), 'utf8')),
  );
  const files = out.generations.reduce((a, g) => a + g.files, 0);
  const bytes = out.generations.reduce((a, g) => a + g.bytes, 0);
  const bytesCopied = out.generations.reduce((a, g) => a + g.bytesCopied, 0);
  const stopped = meta.appStoppedAt ? Date.parse(meta.appStoppedAt) - m.startedAt : undefined;
  const started = meta.appStartedAt ? Date.parse(meta.appStartedAt) - m.startedAt : undefined;
  const rsyncs = m.children.filter((c) => c.comm === 'rsync');
  const collect = rsyncs.length
    ? Math.max(...rsyncs.map((c) => c.lastMs)) - Math.min(...rsyncs.map((c) => c.firstMs))
    : undefined;
  const parts = [
    stopped !== undefined ? `start-up and preflight ${secs(stopped)}` : undefined,
    `app down ${secs(meta.downtimeMs ?? out.downtimeMs)}${collect !== undefined ? ` (of which the mirror rsyncs ≈ ${secs(collect)})` : ''}`,
    started !== undefined
      ? `build, hash and hand over after the app was back ${secs(m.wallMs - started)}`
      : undefined,
  ].filter((p) => p !== undefined);
  return {
    m,
    id: out.id,
    downtimeMs: meta.downtimeMs ?? out.downtimeMs,
    files,
    bytes,
    bytesCopied,
    breakdown: `${parts.join('; ')} (total ${secs(m.wallMs)})`,
  };
}

export interface PullRun {
  m: Measured;
  breakdown: string;
}

export async function sinkPull(env: BenchEnv): Promise<PullRun> {
  await markSinkStore(env);
  await sync();
  const m = await measureOk(
    'baton sink pull data',
    baton('--log-format', 'json', 'sink', 'pull', 'data', '--config', env.sinkConfig),
  );
  const lines = logLines(m.stderr);
  const rsyncs = m.children
    .filter((c) => c.comm === 'rsync')
    .sort((a, b) => b.lastMs - b.firstMs - (a.lastMs - a.firstMs));
  const main = rsyncs[0];
  const listed = logAt(m, lines, /pending/);
  const verified = logAt(m, lines, /^verified /);
  const published = logAt(m, lines, /^published /);
  const acked = logAt(m, lines, /^acked /);
  const parts: string[] = [];
  if (listed !== undefined) parts.push(`start-up, ssh and list ${secs(listed)}`);
  if (main) {
    if (listed !== undefined) parts.push(`until the tree rsync starts ${secs(main.firstMs - listed)}`);
    parts.push(`tree rsync ${secs(main.lastMs - main.firstMs)}`);
    if (verified !== undefined) parts.push(`verify after it ${secs(verified - main.lastMs)}`);
  }
  const counts = verifyCounts.safeParse(lines.find((x) => /^verified /.test(x.msg ?? '')));
  if (counts.success) {
    const v = counts.data;
    parts.push(
      `${v.hashed} files hashed (${v.hashedDuringTransfer} of them during the transfer), ${v.reused} hard links to the previous generation not re-read`,
    );
  }
  if (verified !== undefined && published !== undefined)
    parts.push(`publish (syncfs) ${secs(published - verified)}`);
  if (published !== undefined && acked !== undefined) parts.push(`prune and ack ${secs(acked - published)}`);
  if (acked !== undefined) parts.push(`exit ${secs(m.wallMs - acked)}`);
  return { m, breakdown: `${parts.join('; ')} (total ${secs(m.wallMs)})` };
}

/** `verifyGeneration({ hashes: true })` with its defaults, timed without the process start-up. */
export async function verifyDirect(genDir: string): Promise<{ ms: number; m: Measured }> {
  const m = await measureOk('verify-deep', [
    process.execPath,
    '--import',
    'tsx',
    fileURLToPath(new URL('./verify-deep.ts', import.meta.url)),
    genDir,
  ]);
  const out = z.object({ ok: z.boolean(), ms: z.number(), bytes: z.number() }).parse(JSON.parse(m.stdout));
  return { ms: out.ms, m };
}

export async function bareRefresh(env: BenchEnv): Promise<Measured> {
  await sync();
  return measureOk('bare rsync refresh', [
    'rsync',
    '-a',
    '--delete',
    env.appData,
    env.appLogs,
    `${env.bareMirror}/`,
  ]);
}

/** A bare pull, and how long flushing what it wrote takes then (baton's publish makes its copy durable). */
export type BarePull = Measured & { flushMs: number };

export async function barePull(
  env: BenchEnv,
  from: string,
  to: string,
  linkDest?: string,
): Promise<BarePull> {
  await mkdir(env.bareSink, { recursive: true });
  await sync();
  const m = await measureOk('bare rsync over ssh', [
    'rsync',
    '-a',
    ...(linkDest ? [`--link-dest=${linkDest}`] : []),
    '-e',
    env.bareRsh,
    `${env.remote}:${from}/`,
    `${to}/`,
  ]);
  const flush = await measureOk('sync -f', ['sync', '-f', to]);
  return { ...m, flushMs: flush.wallMs };
}

/** Measurements that failed once and were run again, with why (shown in the notes). */
export const retried: string[] = [];

/**
 * Runs a measured step; if its command fails, says so (with the sshd log's last auth lines), cleans
 * up with `reset` and runs it once more. Other engineers' tests on a shared machine change users and
 * load it; one transient failure should not void an hour of measurements, and a retry is never silent.
 */
export async function withRetry<T>(
  env: BenchEnv,
  what: string,
  fn: () => Promise<T>,
  reset?: () => Promise<void>,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof CommandFailed)) throw e;
    const sshdSaid = env.sshd
      .logs()
      .split('\n')
      .filter((l) => /denied|Failed|Invalid|error|refused|closed/i.test(l))
      .slice(-3)
      .join(' / ');
    say(`${what} failed, running it once more: ${errorLine(e)}${sshdSaid ? ` (sshd: ${sshdSaid})` : ''}`);
    retried.push(`${what}: ${errorLine(e)}${sshdSaid ? ` (sshd: ${sshdSaid})` : ''}`);
    // a refused key: something else on the machine rewrote our users' authorized_keys (another run)
    if (/Permission denied|authentication refused/.test(e.message)) await env.writeKeys();
    await reset?.();
    return fn();
  }
}

/** Runs `a` and `b`, alternating which goes first by run number (page cache and writeback fairness). */
export async function pair<A, B>(run: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (run % 2 === 0) {
    const x = await a();
    return [x, await b()];
  }
  const y = await b();
  return [await a(), y];
}

export function errorLine(e: unknown): string {
  if (e instanceof CommandFailed) return e.message.split('\n').slice(0, 3).join(' / ');
  return e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
}
