import { existsSync } from 'node:fs';
import type { SinkSourceConfig, SinkStreamConfig } from '../config/schema.js';
import { runProcess, type RunResult } from '../adapters/run.js';
import { mkdirp } from '../adapters/fsx.js';

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
  /** Runs a gate command (`list`, `ack …`) and returns its result. */
  run(command: string, timeoutMs: number): Promise<RunResult>;
  close(): Promise<void>;
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
  controlDir: string,
  ioTimeoutMs: number,
): string[] {
  const cert = `${stream.identity}-cert.pub`;
  const aliveSeconds = 15;
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
    `ServerAliveCountMax=${Math.max(2, Math.ceil(ioTimeoutMs / 1000 / aliveSeconds))}`,
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${controlDir}/%C`,
    '-o',
    'ControlPersist=60',
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

export async function sshTransport(
  src: SinkSourceConfig,
  stream: SinkStreamConfig,
  controlDir: string,
  ioTimeoutMs: number,
): Promise<Transport> {
  await mkdirp(controlDir, 0o700);
  const rsh = sshArgv(src, stream, controlDir, ioTimeoutMs);
  const remote = `${stream.user}@${src.host}`;
  return {
    rsh,
    remote,
    describe: `ssh ${remote} port ${src.port}`,
    run: (command, timeoutMs) => runProcess([...rsh, remote, command], { timeoutMs, captureStdout: true }),
    close: async () => {
      await runProcess([...rsh, '-O', 'exit', remote], { timeoutMs: 10_000 });
    },
  };
}

/** ssh's exit 255 is its own failure (connection, auth, host key); say which in plain words. */
export function describeSshFailure(r: RunResult): string {
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
