import { spawn } from 'node:child_process';
import { recordChild } from './children.js';
import { LineReader } from './line-reader.js';

/** A command as the operator writes it: a shell string (run by /bin/sh -c) or an argv list. */
export type Command = string | readonly string[];

export interface RunOptions {
  /** Kill the whole process group (TERM, then KILL after `killGraceMs`) once this has passed. */
  timeoutMs?: number;
  killGraceMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, then stdin is closed. Without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Called with every chunk of stdout / stderr as it arrives (progress parsing, streaming). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Bytes of each stream kept for the result (the tail). */
  tailBytes?: number;
  /**
   * Keep all of stdout rather than its tail (for small, bounded outputs such as `list`), up to
   * `maxStdoutBytes`: past it the process group is ended and the result says `exceeded`.
   */
  captureStdout?: boolean;
  /** Cap on captured stdout, counted while it is read (default 16 MiB). */
  maxStdoutBytes?: number;
  /** Captured stdout as bytes (`stdoutBytes`, for a reply that is not all text); `stdout` is then empty. */
  stdoutAsBytes?: boolean;
  /** Receives SIGTERM on timeout / abort too. */
  signal?: AbortSignal;
  /** Told the child's pid (= its process group id) once it is spawned. */
  onSpawn?: (pid: number) => void;
  uid?: number;
  gid?: number;
  /**
   * Not recorded for a later run to end if this one is killed (see children.ts). For the app's
   * start command only: the server it starts may stay in its process group and must keep running.
   */
  untracked?: boolean;
}

export interface RunResult {
  argv: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  stdout: string;
  /** captured stdout as bytes, with `stdoutAsBytes` */
  stdoutBytes?: Buffer;
  stderr: string;
  /** set when captured stdout passed its cap: the process group was ended and stdout is cut there */
  exceeded?: { stream: 'stdout'; limitBytes: number };
}

/** Default cap on captured stdout (`captureStdout`) when the caller gives none. */
export const DEFAULT_MAX_STDOUT_BYTES = 16 * 2 ** 20;

/** argv for a Command: strings go through /bin/sh -c (the operator's own shell line), lists run as they are. */
export function commandArgv(cmd: Command): readonly string[] {
  return typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : cmd;
}

/** For logs and messages: a shell string as written, an argv list joined with quotes where needed. */
export function describeCommand(cmd: Command): string {
  if (typeof cmd === 'string') return cmd;
  return cmd.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      const first = this.chunks.shift();
      if (first) this.size -= first.length;
    }
  }
  toBuffer(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit));
  }
  toString(): string {
    return this.toBuffer().toString('utf8');
  }
}

/**
 * Runs a process in its own process group and always resolves (never rejects on a non-zero exit):
 * callers classify the result. A spawn failure (missing binary) resolves with code 127 and the
 * reason in stderr, like a shell would.
 */
export function runProcess(cmd: Command, opts: RunOptions = {}): Promise<RunResult> {
  const argv = commandArgv(cmd);
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runProcess: empty command');
  const started = Date.now();
  const tailBytes = opts.tailBytes ?? 64 * 1024;
  const maxStdout = opts.maxStdoutBytes ?? DEFAULT_MAX_STDOUT_BYTES;
  const out = opts.captureStdout ? new Tail(maxStdout) : new Tail(tailBytes);
  const err = new Tail(tailBytes);
  return new Promise((resolve) => {
    let timedOut = false;
    let exceeded = false;
    let stdoutBytes = 0;
    let settled = false;
    const child = spawn(file, args, {
      detached: true,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
    });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    // recorded before anything else can happen, so a later run can end it if baton is killed
    const forget = opts.untracked ? () => undefined : recordChild(child.pid, argv);
    let graceTimer: NodeJS.Timeout | undefined;
    let terminated = false;
    const terminate = (): void => {
      terminated = true;
      killGroup('SIGTERM');
      graceTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 5000);
      graceTimer.unref();
    };
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            terminate();
          }, opts.timeoutMs);
    const onAbort = (): void => terminate();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // aborted before the spawn: 'abort' never fires again
    if (opts.signal?.aborted) terminate();
    child.stdout?.on('data', (b: Buffer) => {
      if (exceeded) return;
      if (opts.captureStdout) {
        stdoutBytes += b.length;
        if (stdoutBytes > maxStdout) {
          // Stop reading at the cap: a hostile or broken peer cannot fill memory through us.
          exceeded = true;
          child.stdout?.destroy();
          terminate();
          return;
        }
      }
      out.push(b);
      opts.onStdout?.(b);
    });
    child.stderr?.on('data', (b: Buffer) => {
      err.push(b);
      opts.onStderr?.(b);
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
    const finish = (code: number | null, signal: NodeJS.Signals | null, extraErr?: string): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      // The group leader is gone; kill what it left behind (a daemon's children, a stopped child
      // that never saw the SIGTERM) once we had asked the group to end (timeout or abort).
      if (timedOut || terminated) killGroup('SIGKILL');
      if (graceTimer) clearTimeout(graceTimer);
      forget();
      resolve({
        argv,
        code,
        signal,
        timedOut,
        durationMs: Date.now() - started,
        ...(opts.stdoutAsBytes ? { stdout: '', stdoutBytes: out.toBuffer() } : { stdout: out.toString() }),
        stderr: extraErr === undefined ? err.toString() : `${err.toString()}${extraErr}`,
        ...(exceeded ? { exceeded: { stream: 'stdout' as const, limitBytes: maxStdout } } : {}),
      });
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish(127, null, `${file}: ${e.code === 'ENOENT' ? 'command not found' : e.message}`);
    });
    // 'exit' rather than 'close': a grandchild that keeps our pipes open (an app server's
    // daemonised children) must not hold us until it dies.
    child.on('exit', (code, signal) => {
      // Wait for the pipes to drain, but not for a grandchild that holds them open.
      const drain = setTimeout(() => finish(code, signal), 1000);
      drain.unref();
      child.on('close', () => {
        clearTimeout(drain);
        finish(code, signal);
      });
    });
  });
}

export interface AttachedRunOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Open file descriptors the child gets as its fd 3, 4, … (set up before it changes to `cwd`). */
  fds?: readonly number[];
  /** Signals to this process that are passed on to the child while it runs. */
  forwardSignals?: readonly NodeJS.Signals[];
  /** Told the running child (to end it from elsewhere); the function it returns is called when it ended. */
  onSpawn?: (child: { kill: (sig: NodeJS.Signals) => boolean }) => () => void;
}

export interface AttachedResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** set when it could not be started (then code and signal are null) */
  error?: string;
}

/**
 * Runs a process on this process's own stdin, stdout and stderr (nothing captured, same process group):
 * for a server that talks to our caller directly, the gate's rsync on the ssh session. Always resolves.
 * Not recorded in children.ts: it ends with this process (forwarded signals, `onSpawn`'s kill).
 */
export function runAttached(argv: readonly string[], opts: AttachedRunOptions): Promise<AttachedResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runAttached: empty command');
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      stdio: ['inherit', 'inherit', 'inherit', ...(opts.fds ?? [])],
      cwd: opts.cwd,
      env: opts.env,
    });
    const forget = opts.onSpawn?.(child);
    const forwarded = opts.forwardSignals ?? [];
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of forwarded) process.on(sig, forward);
    let settled = false;
    const done = (r: AttachedResult): void => {
      if (settled) return;
      settled = true;
      forget?.();
      for (const sig of forwarded) process.off(sig, forward);
      resolve(r);
    };
    child.on('error', (e) => done({ code: null, signal: null, error: e.message }));
    child.on('exit', (code, signal) => done({ code, signal }));
  });
}

/** A short description of how a process ended, for one-line errors. */
export function describeExit(r: RunResult): string {
  if (r.exceeded) return `${describeExceeded(r.exceeded.limitBytes)} (process group killed)`;
  if (r.timedOut) return `timed out after ${Math.round(r.durationMs / 1000)}s (process group killed)`;
  if (r.signal) return `killed by ${r.signal}`;
  const lastLine = r.stderr.trim().split('\n').at(-1)?.trim();
  return `exit ${r.code}${lastLine ? `: ${lastLine.slice(0, 300)}` : ''}`;
}

/** `output larger than 4 MiB`: the one-line reason for a capped reply. */
export function describeExceeded(limitBytes: number): string {
  const size =
    limitBytes % 2 ** 20 === 0
      ? `${limitBytes / 2 ** 20} MiB`
      : limitBytes % 1024 === 0
        ? `${limitBytes / 1024} KiB`
        : `${limitBytes} bytes`;
  return `output larger than ${size}, stopped reading`;
}

export interface DialogueLimits {
  /** Each wait (a line, the end) at most this long: the sink's configured `timeout`. */
  timeoutMs: number;
  /** The most lines read from the gate, and the longest one. */
  maxLines: number;
  maxLineBytes: number;
}

/** A process talking in lines (the gate's ack): hostile replies are bounded while read, every wait has a deadline. */
export interface Dialogue {
  /** The process's next stdout line; undefined once it ended. Throws when late, too long or too many. */
  readLine(): Promise<string | undefined>;
  write(text: string): void;
  /** Closes our side, waits (at most the timeout) for the process to end; kills it when late. */
  finish(): Promise<{ code: number | null; timedOut: boolean; stderr: string }>;
  /** Ends it now (its process group), e.g. after a bad reply. */
  kill(): void;
}

/** How much of the gate's stderr a dialogue keeps (its last lines say why it refused). */
const DIALOGUE_STDERR_BYTES = 16 * 1024;

/**
 * Runs `argv` (ssh … command) as a dialogue: stdin a pipe we keep open until `finish`, stdout read as
 * bounded lines, stderr's tail kept, the process group killed on timeout or `kill`.
 */
export function spawnDialogue(argv: readonly string[], limits: DialogueLimits): Dialogue {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('spawnDialogue: empty command');
  const child = spawn(file, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  // recorded like every runProcess child: a later run ends an `ssh … ack` a killed run left behind
  child.on('exit', recordChild(child.pid, argv));
  let stderr = Buffer.alloc(0);
  child.stderr.on('data', (b: Buffer) => {
    stderr = Buffer.concat([stderr, b]);
    if (stderr.length > DIALOGUE_STDERR_BYTES)
      stderr = stderr.subarray(stderr.length - DIALOGUE_STDERR_BYTES);
  });
  child.stdin.on('error', () => undefined);
  const reader = new LineReader(child.stdout, limits.maxLineBytes, limits.maxLines);
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', () => resolve(127));
  });
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  return {
    readLine: async () => {
      try {
        return await reader.next(limits.timeoutMs);
      } catch (e) {
        killGroup();
        throw e;
      }
    },
    write: (text) => {
      child.stdin.write(text);
    },
    finish: async () => {
      child.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), limits.timeoutMs);
      });
      const r = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (r === 'late') {
        killGroup();
        return { code: null, timedOut: true, stderr: stderr.toString('utf8') };
      }
      // let stderr drain (the gate's refusal line), but not for a grandchild that holds it open
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        t.unref();
        child.on('close', () => {
          clearTimeout(t);
          resolve();
        });
        if (child.stderr.readableEnded) resolve();
      });
      return { code: r, timedOut: false, stderr: stderr.toString('utf8') };
    },
    kill: killGroup,
  };
}
