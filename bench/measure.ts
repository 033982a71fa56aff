/**
 * Timing and memory of one command: wall time, peak RSS of the whole process tree as
 * `/usr/bin/time -v` reports it (the largest of the process and its waited-for descendants),
 * and the peak RSS (VmHWM) of the top process alone, polled from /proc.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, type RunResult } from '../src/adapters/run.js';

export const GNU_TIME = '/usr/bin/time';

export interface Measured {
  argv: readonly string[];
  code: number | null;
  wallMs: number;
  /** `/usr/bin/time -v` "Maximum resident set size": the largest process of the tree, KiB */
  maxRssKiB: number | undefined;
  /** VmHWM of the top process itself (not its children), KiB */
  selfHwmKiB: number | undefined;
  /** user + system CPU seconds of the command and its children (`/usr/bin/time -v`) */
  cpuS: number | undefined;
  /** epoch ms when the command was started */
  startedAt: number;
  /** the top process's children as seen by polling (every ~10 ms), ms since the start */
  children: ChildSeen[];
  stdout: string;
  stderr: string;
}

export interface ChildSeen {
  pid: number;
  comm: string;
  firstMs: number;
  lastMs: number;
}

export class CommandFailed extends Error {
  constructor(
    readonly what: string,
    readonly result: Measured | RunResult,
  ) {
    const err = result.stderr.trim().split('\n').slice(-8).join('\n');
    super(`${what} failed (exit ${String(result.code)}): ${err}`);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function readHwm(pid: number): Promise<number | undefined> {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses `/usr/bin/time -v` output; undefined fields when absent. */
export function parseGnuTime(text: string): {
  maxRssKiB?: number;
  exitStatus?: number;
  cpuS?: number;
} {
  const rss = /Maximum resident set size \(kbytes\):\s*(\d+)/.exec(text);
  const exit = /Exit status:\s*(\d+)/.exec(text);
  const user = /User time \(seconds\):\s*([\d.]+)/.exec(text);
  const sys = /System time \(seconds\):\s*([\d.]+)/.exec(text);
  return {
    ...(rss ? { maxRssKiB: Number(rss[1]) } : {}),
    ...(exit ? { exitStatus: Number(exit[1]) } : {}),
    ...(user && sys ? { cpuS: Number(user[1]) + Number(sys[1]) } : {}),
  };
}

/** 1-minute load averages seen when measurements started (other work on the machine skews times). */
export const loadSeen: number[] = [];

/**
 * Runs `argv` under `/usr/bin/time -v` (when installed) and a small shell that records its pid
 * and execs it, polling that pid's VmHWM until it exits. Never throws on a non-zero exit.
 */
export async function measure(
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; captureStdout?: boolean } = {},
): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-bench-m-'));
  try {
    const pidFile = join(dir, 'pid');
    const timeFile = join(dir, 'time');
    const haveTime = existsSync(GNU_TIME);
    const wrapped = [
      ...(haveTime ? [GNU_TIME, '-v', '-o', timeFile] : []),
      '/bin/sh',
      '-c',
      'echo $$ > "$0"; exec "$@"',
      pidFile,
      ...argv,
    ];
    let done = false;
    let hwm: number | undefined;
    const seen = new Map<number, ChildSeen>();
    const t0 = Date.now();
    loadSeen.push(loadavg()[0] ?? 0);
    const poll = (async () => {
      let pid: number | undefined;
      while (!done) {
        if (pid === undefined) {
          const text = await readFile(pidFile, 'utf8').catch(() => '');
          if (/^\d+\n$/.test(text)) pid = Number(text);
        }
        if (pid !== undefined) {
          const h = await readHwm(pid);
          if (h !== undefined) hwm = Math.max(hwm ?? 0, h);
          const kids = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
          const now = Date.now() - t0;
          for (const k of kids
            .split(' ')
            .filter((x) => /^\d+$/.test(x))
            .map(Number)) {
            const c = seen.get(k);
            if (c) c.lastMs = now;
            else {
              const comm = (await readFile(`/proc/${k}/comm`, 'utf8').catch(() => '?')).trim();
              seen.set(k, { pid: k, comm, firstMs: now, lastMs: now });
            }
          }
        }
        await sleep(10);
      }
    })();
    const r = await runProcess(wrapped, {
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      timeoutMs: opts.timeoutMs ?? 4 * 3600_000,
      captureStdout: opts.captureStdout ?? true,
      tailBytes: 256 * 1024,
    });
    done = true;
    await poll;
    const t = haveTime ? parseGnuTime(await readFile(timeFile, 'utf8').catch(() => '')) : {};
    // time's own "Command exited with non-zero status" line goes to its -o file, not stderr.
    return {
      argv,
      code: t.exitStatus ?? r.code,
      wallMs: r.durationMs,
      maxRssKiB: t.maxRssKiB ?? hwm,
      cpuS: t.cpuS,
      selfHwmKiB: hwm,
      startedAt: t0,
      children: [...seen.values()],
      stdout: r.stdout,
      stderr: r.stderr,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Like `measure`, but a non-zero exit throws CommandFailed naming `what`. */
export async function measureOk(
  what: string,
  argv: readonly string[],
  opts: Parameters<typeof measure>[1] = {},
): Promise<Measured> {
  const m = await measure(argv, opts);
  if (m.code !== 0) throw new CommandFailed(what, m);
  return m;
}

/** Runs a helper command (not measured); throws CommandFailed on a non-zero exit. */
export async function runOk(
  what: string,
  argv: readonly string[],
  opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const r = await runProcess(argv, {
    timeoutMs: opts.timeoutMs ?? 3600_000,
    captureStdout: true,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  if (r.code !== 0) throw new CommandFailed(what, r);
  return r;
}
