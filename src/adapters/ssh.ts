import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { lstat, mkdir } from 'node:fs/promises';
import type { SinkSourceConfig, SinkStreamConfig } from '../config/schema.js';
import { mkdirp } from './fsx.js';
import { describeExit, type RunResult } from './run.js';

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
