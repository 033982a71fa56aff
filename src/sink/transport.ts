import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { lstat, mkdir } from 'node:fs/promises';
import type { SinkSourceConfig, SinkStreamConfig } from '../config/schema.js';
import { describeExit, runProcess, type RunResult } from '../adapters/run.js';
import { mkdirp } from '../adapters/fsx.js';
import { LineReader } from '../adapters/line-reader.js';
import { recordChild } from '../adapters/children.js';

/**
 * How the sink reaches a source's gate: the remote shell rsync uses (`-e`) and a way to run
 * `list` / `ack` through the same gate. Normally ssh with a pinned host key; the demo may use a
 * local shell that runs the same gate code.
 */
export interface Transport {
  /** argv of the remote shell; rsync gets it joined as `-e` */
  rsh: readonly string[];
  /** `user@host` */
  remote: string;
  describe: string;
  /**
   * Runs a gate command (`list`, `reject …`) and returns its result; stdout is read up to
   * `maxStdoutBytes` (default GATE_REPLY_MAX_BYTES), past it the call ends with `exceeded` set.
   */
  run(command: string, timeoutMs: number, maxStdoutBytes?: number): Promise<RunResult>;
  /** Opens a gate command as a line dialogue over one session (`ack …`: challenge and answer). */
  dialogue(command: string, limits: DialogueLimits): GateDialogue;
  close(): Promise<void>;
}

/** Default cap on a gate reply (a `reject` answer is one short JSON line). */
export const GATE_REPLY_MAX_BYTES = 64 * 1024;

export interface DialogueLimits {
  /** Each wait (a line, the end) at most this long: the sink's configured `timeout`. */
  timeoutMs: number;
  /** The most lines read from the gate, and the longest one. */
  maxLines: number;
  maxLineBytes: number;
}

/** A gate command talking in lines: hostile replies are bounded while read, every wait has a deadline. */
export interface GateDialogue {
  /** The gate's next stdout line; undefined once it ended. Throws when late, too long or too many. */
  readLine(): Promise<string | undefined>;
  write(text: string): void;
  /** Closes our side, waits (at most the timeout) for the gate to end; kills it when late. */
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
export function spawnDialogue(argv: readonly string[], limits: DialogueLimits): GateDialogue {
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

// Preferred ciphers: aes128-gcm is the fastest with AES-NI; the others are fallbacks every OpenSSH has.
const CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com';

/**
 * ssh argv for one source and stream: the pinned known_hosts only (StrictHostKeyChecking=yes,
 * never accept-new), the stream's key and its certificate when one sits next to it, batch mode,
 * keep-alives so a stalled link fails, and one shared connection for list, rsync and ack.
 * Options come first: ssh takes the first value it sees for each.
 */
export function sshArgv(
  src: SinkSourceConfig,
  stream: SinkStreamConfig,
  controlDir: string | undefined,
  ioTimeoutMs: number,
): string[] {
  const cert = `${stream.identity}-cert.pub`;
  // a probe every 15 s, more often for a short timeout: a dead link fails after about the timeout
  const timeoutSeconds = Math.max(1, Math.round(ioTimeoutMs / 1000));
  const aliveSeconds = Math.max(1, Math.min(15, Math.floor(timeoutSeconds / 3)));
  return [
    'ssh',
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${src.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-i',
    stream.identity,
    ...(existsSync(cert) ? ['-o', `CertificateFile=${cert}`] : []),
    '-o',
    'PasswordAuthentication=no',
    '-o',
    'KbdInteractiveAuthentication=no',
    '-o',
    'ConnectTimeout=30',
    '-o',
    `ServerAliveInterval=${aliveSeconds}`,
    '-o',
    `ServerAliveCountMax=${Math.max(2, Math.ceil(timeoutSeconds / aliveSeconds))}`,
    ...(controlDir === undefined
      ? []
      : [
          '-o',
          'ControlMaster=auto',
          '-o',
          `ControlPath=${controlDir}/${connectionKey(src, stream)}`,
          '-o',
          'ControlPersist=60',
        ]),
    '-o',
    'ClearAllForwardings=yes',
    '-c',
    CIPHERS,
    '-p',
    String(src.port),
  ];
}

/** Joins argv for rsync's `-e`, which splits on spaces and honours single quotes. */
export function joinRsh(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/**
 * The shared connection's name: one per host, port, user AND key. ssh's own `%C` leaves the key
 * out, so two sources on one host with different keys would share a connection (and so one
 * forced command).
 */
export function connectionKey(src: SinkSourceConfig, stream: SinkStreamConfig): string {
  return createHash('sha256')
    .update(JSON.stringify([src.host, src.port, stream.user, stream.identity]))
    .digest('hex')
    .slice(0, 20);
}

/**
 * A directory for ssh control sockets. Unix socket paths are limited to 108 bytes and ssh adds
 * `/<20 hex>.<16 random>`; a long stateDir falls back to a private `/tmp/baton-ssh-<uid>`.
 * Returns undefined when no safe short directory exists (then no connection sharing).
 */
export async function controlSocketDir(preferred: string): Promise<string | undefined> {
  const fits = (dir: string) => Buffer.byteLength(dir) + 1 + 20 + 17 < 104;
  if (fits(preferred)) {
    await mkdirp(preferred, 0o700);
    return preferred;
  }
  const uid = process.getuid?.() ?? 0;
  const dir = `/tmp/baton-ssh-${uid}`;
  await mkdir(dir, { mode: 0o700 }).catch(() => undefined);
  const st = await lstat(dir).catch(() => undefined);
  // never use a directory someone else made (or a symlink) for our sockets
  if (!st?.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) return undefined;
  return dir;
}

export async function sshTransport(
  src: SinkSourceConfig,
  stream: SinkStreamConfig,
  controlDir: string,
  ioTimeoutMs: number,
): Promise<Transport> {
  const sockets = await controlSocketDir(controlDir);
  const rsh = sshArgv(src, stream, sockets, ioTimeoutMs);
  const remote = `${stream.user}@${src.host}`;
  return {
    rsh,
    remote,
    describe: `ssh ${remote} port ${src.port}`,
    run: (command, timeoutMs, maxStdoutBytes = GATE_REPLY_MAX_BYTES) =>
      runProcess([...rsh, remote, command], { timeoutMs, captureStdout: true, maxStdoutBytes }),
    dialogue: (command, limits) => spawnDialogue([...rsh, remote, command], limits),
    close: async () => {
      if (sockets !== undefined) await runProcess([...rsh, '-O', 'exit', remote], { timeoutMs: 10_000 });
    },
  };
}

/** ssh's exit 255 is its own failure (connection, auth, host key); say which in plain words. */
export function describeSshFailure(r: RunResult): string {
  if (r.exceeded) return `the reply is larger than it may be: ${describeExit(r)}`;
  const err = r.stderr;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/.test(err)) {
    return 'host key verification failed: the source host key does not match knownHosts (changed host key?)';
  }
  if (/Permission denied/.test(err))
    return 'authentication refused (key or certificate not accepted; expired certificate?)';
  if (/Connection refused|No route to host|Connection timed out|Could not resolve/.test(err)) {
    return `source unreachable: ${err.trim().split('\n').at(-1) ?? ''}`;
  }
  if (r.timedOut) return 'timed out';
  const last = err.trim().split('\n').at(-1);
  return `exit ${r.code}${last ? `: ${last.slice(0, 300)}` : ''}`;
}
