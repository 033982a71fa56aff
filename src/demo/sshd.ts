/**
 * A real OpenSSH server on 127.0.0.1 for `baton demo` and the end-to-end tests: its own config, host key, port and
 * pid file in a temp dir, logging to our stderr pipe. Needs root (sshd switches users).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, type RunResult } from '../adapters/run.js';

export const SSHD_BINARY = '/usr/sbin/sshd';

export interface SshdOptions {
  /** Parent directory of the server's temp dir (default: the OS temp dir). */
  dir?: string;
  /** More sshd_config lines, appended after ours (sshd keeps the first value of a keyword, so these cannot override ours). */
  extraConfig?: readonly string[];
  /** A user CA public key for `TrustedUserCAKeys`: the key text (as in a .pub file) or the path of such a file. */
  trustedUserCAKeys?: string;
}

export interface Sshd {
  port: number;
  host: '127.0.0.1';
  /** The host public key line, e.g. `ssh-ed25519 AAAA…`. */
  hostKeyPub: string;
  /** A known_hosts file pinning this server: `[127.0.0.1]:PORT <key>`. */
  knownHostsFile: string;
  /** This server's temp dir (config, host key, pid file, known_hosts); removed by stop(). */
  dir: string;
  /** The last lines sshd wrote to stderr (its log at LogLevel VERBOSE). */
  logs(): string;
  /** Kills sshd (its whole process group) and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const LOG_LINES_KEPT = 400;
const START_ATTEMPTS = 5;
const START_TIMEOUT_MS = 15_000;

/** Every server still running, killed on exit if a test forgot (or could not) stop it. */
const running = new Set<{ pid: () => number | undefined }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const r of running) {
      const pid = r.pid();
      if (pid === undefined) continue;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** OpenSSH ≥ 9.8 penalises sources with failed logins; on loopback that would throttle the tests themselves. */
async function opensshVersion(): Promise<[number, number]> {
  const r = await runProcess(['ssh', '-V'], { timeoutMs: 10_000 });
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(`${r.stderr}${r.stdout}`);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

async function resolveCAKeys(value: string, dir: string): Promise<string> {
  if (value.startsWith('/')) return value;
  const file = join(dir, 'trusted_user_ca_keys');
  await writeFile(file, value.endsWith('\n') ? value : `${value}\n`, { mode: 0o644 });
  return file;
}

function configText(o: {
  port: number;
  hostKey: string;
  pidFile: string;
  caKeys?: string;
  penalties: boolean;
  extra: readonly string[];
}): string {
  const lines = [
    `Port ${o.port}`,
    'ListenAddress 127.0.0.1',
    'AddressFamily inet',
    `HostKey ${o.hostKey}`,
    `PidFile ${o.pidFile}`,
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'StrictModes no',
    'LogLevel VERBOSE',
    'PermitRootLogin no',
    'UseDNS no',
    'PrintMotd no',
    'X11Forwarding no',
    'MaxStartups 100:30:200',
    'LoginGraceTime 30',
    ...(o.caKeys === undefined ? [] : [`TrustedUserCAKeys ${o.caKeys}`]),
    ...(o.penalties ? ['PerSourcePenalties no'] : []),
    ...o.extra,
  ];
  return `${lines.join('\n')}\n`;
}

/** Starts sshd on a free loopback port; resolves once it accepts connections. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  installExitHook();
  // sshd insists on its privilege separation dir (root-owned, not group/world writable).
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const parent = opts.dir ?? tmpdir();
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'baton-sshd-'));
  try {
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const keygen = await runProcess(
      ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'baton-test-host', '-f', hostKey],
      { timeoutMs: 30_000 },
    );
    if (keygen.code !== 0) throw new Error(`ssh-keygen (host key) failed: ${keygen.stderr.trim()}`);
    const hostKeyPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const caKeys =
      opts.trustedUserCAKeys === undefined ? undefined : await resolveCAKeys(opts.trustedUserCAKeys, dir);
    const [major, minor] = await opensshVersion();
    const penalties = major > 9 || (major === 9 && minor >= 8);

    let lastFailure = '';
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      const port = await freePort();
      const configFile = join(dir, 'sshd_config');
      await writeFile(
        configFile,
        configText({
          port,
          hostKey,
          pidFile: join(dir, 'sshd.pid'),
          caKeys,
          penalties,
          extra: opts.extraConfig ?? [],
        }),
        { mode: 0o600 },
      );
      const started = await launch(configFile, join(dir, 'sshd.pid'), port);
      if ('server' in started) {
        const knownHostsFile = join(dir, 'known_hosts');
        await writeFile(knownHostsFile, `[127.0.0.1]:${port} ${hostKeyPub}\n`, { mode: 0o644 });
        const { server } = started;
        let stopped: Promise<void> | undefined;
        const sshd: Sshd = {
          port,
          host: '127.0.0.1',
          hostKeyPub,
          knownHostsFile,
          dir,
          logs: server.logs,
          stop: () => {
            stopped ??= (async () => {
              await server.kill();
              await rm(dir, { recursive: true, force: true });
            })();
            return stopped;
          },
        };
        return sshd;
      }
      lastFailure = started.failure;
      if (!/Address already in use/i.test(started.failure)) break;
    }
    throw new Error(`sshd did not start: ${lastFailure}`);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

interface RunningServer {
  logs: () => string;
  kill: () => Promise<void>;
}

async function launch(
  configFile: string,
  pidFile: string,
  port: number,
): Promise<{ server: RunningServer } | { failure: string }> {
  const lines: string[] = [];
  let partial = '';
  const abort = new AbortController();
  let pid: number | undefined;
  let exited: RunResult | undefined;
  const onStderr = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
  };
  const logs = (): string => [...lines, ...(partial ? [partial] : [])].join('\n');
  const done = runProcess([SSHD_BINARY, '-D', '-e', '-f', configFile], {
    signal: abort.signal,
    killGraceMs: 3000,
    onStderr,
    tailBytes: 4096,
  }).then((r) => {
    exited = r;
    return r;
  });
  // runProcess does not expose the pid; sshd writes its own pid file, the log tells us when it listens.
  const entry = { pid: () => (exited ? undefined : pid) };
  running.add(entry);
  const kill = async (): Promise<void> => {
    abort.abort();
    await done;
    running.delete(entry);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) {
      running.delete(entry);
      return {
        failure: `exit ${exited.code ?? exited.signal}: ${logs().trim().split('\n').slice(-5).join(' | ')}`,
      };
    }
    if (pid === undefined) {
      pid = await readPid(pidFile);
    }
    if (logs().includes(`Server listening on 127.0.0.1 port ${port}`) && (await canConnect(port))) {
      return { server: { logs, kill } };
    }
    await sleep(25);
  }
  await kill();
  return { failure: `not listening on port ${port} after ${START_TIMEOUT_MS} ms: ${logs().trim()}` };
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** ssh client options for `sshd`: its port, `identityFile`, its pinned host key and no prompts. */
export function sshClientArgs(sshd: Pick<Sshd, 'port' | 'knownHostsFile'>, identityFile: string): string[] {
  return [
    '-p',
    String(sshd.port),
    '-i',
    identityFile,
    '-o',
    `UserKnownHostsFile=${sshd.knownHostsFile}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
  ];
}
