/**
 * The benchmark's world on this machine: its own stream users (batonBenchData, batonBenchLogs),
 * keys, a real sshd on 127.0.0.1, a source and a sink config, all under one temp dir. The sink's
 * key for the data stream has the gate as its forced command (what baton uses); a second key of
 * the same user is unrestricted but for `restrict`, for the bare rsync over the same sshd.
 */
import { chmod, mkdir, mkdtemp, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import {
  ensureUser,
  makeKeyPair,
  writeAuthorizedKeys,
  type KeyPair,
  type SystemUser,
} from '../src/adapters/system-users.js';
import { startSshd, type Sshd } from '../src/demo/sshd.js';
import { joinRsh } from '../src/adapters/ssh.js';
import { runProcess } from '../src/adapters/run.js';
import { NODE_FLAGS } from '../src/cli/node-flags.js';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../src/core/store-marker.js';

/** `BATON_BENCH_MAIN=…/main.js`: another build (e.g. a copy of the old dist, for before/after pairs). */
export const BATON_MAIN =
  process.env['BATON_BENCH_MAIN'] ?? fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
/** The stream users of a benchmark run (the smoke test has its own, so it never disturbs a running benchmark). */
export interface BenchUsers {
  data: string;
  logs: string;
}
export const BENCH_USERS: BenchUsers = { data: 'batonBenchData', logs: 'batonBenchLogs' };
export const SOURCE_NAME = 'bench';
/** The cipher baton prefers; the bare rsync gets the same. */
export const CIPHER = 'aes128-gcm@openssh.com';

export interface BenchEnv {
  root: string;
  appData: string;
  appLogs: string;
  sourceConfig: string;
  sinkConfig: string;
  sourceState: string;
  handoverData: string;
  handoverLogs: string;
  sourceStore: string;
  sinkStore: string;
  /** `<sink store>/bench/data` */
  sinkStream: string;
  sinkState: string;
  /** the bare tools' targets */
  bareMirror: string;
  bareSink: string;
  sshd: Sshd;
  dataUser: SystemUser;
  logUser: SystemUser;
  /** `-e` of the bare rsync: plain ssh, same server, same user, same cipher, no forced command */
  bareRsh: string;
  /** `user@127.0.0.1` */
  remote: string;
  /** (re)writes the stream users' authorized_keys with this run's keys */
  writeKeys(): Promise<void>;
  close(keep: boolean): Promise<void>;
}

/** The baton CLI as argv, as installed units start it (node, its flags, the built main.js). */
export const baton = (...args: string[]): string[] => [
  process.execPath,
  ...NODE_FLAGS,
  ...EXTRA_NODE_FLAGS,
  BATON_MAIN,
  ...args,
];
/** `BATON_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR"`: profile each baton run of a benchmark. */
const EXTRA_NODE_FLAGS = (process.env['BATON_BENCH_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** Creates users, keys, sshd and configs under a new temp dir in `parent`. Needs root. */
export async function createEnv(parent: string, users: BenchUsers = BENCH_USERS): Promise<BenchEnv> {
  if (!existsSync(BATON_MAIN)) throw new Error(`${BATON_MAIN} missing: run \`npm run build\` first`);
  await mkdir(parent, { recursive: true });
  // the gate runs as the stream users: every directory above the work dir must let them through
  for (let d = resolve(parent); ; d = dirname(d)) {
    if (((await stat(d)).mode & 0o001) === 0)
      throw new Error(
        `${d} is not searchable by other users (the stream users must reach the work dir): use --dir`,
      );
    if (d === '/') break;
  }
  const root = await mkdtemp(join(parent, 'baton-bench-'));
  await chmod(root, 0o755);
  let sshd: Sshd | undefined;
  try {
    const dataUser = await ensureUser(users.data);
    const logUser = await ensureUser(users.logs);
    const keys = join(root, 'keys');
    const gateData: KeyPair = await makeKeyPair(keys, 'gate-data');
    const gateLogs: KeyPair = await makeKeyPair(keys, 'gate-logs');
    const bare: KeyPair = await makeKeyPair(keys, 'bare');
    sshd = await startSshd({ dir: root });
    const p = {
      appData: join(root, 'app', 'data'),
      appLogs: join(root, 'app', 'logs'),
      sourceConfig: join(root, 'source.yaml'),
      sinkConfig: join(root, 'sink.yaml'),
      sourceState: join(root, 'source-state'),
      handoverData: join(root, 'handover', 'data'),
      handoverLogs: join(root, 'handover', 'logs'),
      sourceStore: join(root, 'source-store'),
      sinkStore: join(root, 'sink-store'),
      sinkState: join(root, 'sink-state'),
      bareMirror: join(root, 'bare-mirror'),
      bareSink: join(root, 'bare-sink'),
    };
    await mkdir(p.appData, { recursive: true });
    await mkdir(p.appLogs, { recursive: true });
    await writeFile(
      p.sourceConfig,
      stringify({
        name: SOURCE_NAME,
        stateDir: p.sourceState,
        // a trivial app: downtime is baton's own work
        app: { stop: 'true', start: 'true' },
        streams: {
          data: {
            paths: [p.appData],
            handover: p.handoverData,
            user: users.data,
            store: p.sourceStore,
            // the benchmark keeps every generation: pruning is not what it measures
            generations: 50,
          },
          logs: { paths: [p.appLogs], handover: p.handoverLogs, user: users.logs },
        },
        limits: { maxPendingGenerations: 100, minFreeBytes: 0 },
        alerts: { transportOverdue: '30d' },
      }),
      { mode: 0o644 },
    );
    await writeFile(
      p.sinkConfig,
      stringify({
        store: p.sinkStore,
        stateDir: p.sinkState,
        verify: true,
        sources: [
          {
            name: SOURCE_NAME,
            host: '127.0.0.1',
            port: sshd.port,
            knownHosts: sshd.knownHostsFile,
            streams: {
              data: { user: users.data, identity: gateData.privateKey, generations: 50 },
              logs: { user: users.logs, identity: gateLogs.privateKey, generations: 50 },
            },
          },
        ],
      }),
      { mode: 0o644 },
    );
    const gate = (stream: 'data' | 'logs') =>
      `restrict,command="${process.execPath} ${BATON_MAIN} gate ${stream} --config ${p.sourceConfig}"`;
    const writeKeys = async () => {
      await writeAuthorizedKeys(dataUser, [
        `${gate('data')} ${gateData.publicKey}`,
        `restrict ${bare.publicKey}`,
      ]);
      await writeAuthorizedKeys(logUser, [`${gate('logs')} ${gateLogs.publicKey}`]);
    };
    await writeKeys();
    const bareRsh = joinRsh([
      'ssh',
      '-F',
      '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${sshd.knownHostsFile}`,
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      bare.privateKey,
      '-c',
      CIPHER,
      '-p',
      String(sshd.port),
    ]);
    const started = sshd;
    return {
      root,
      ...p,
      sinkStream: join(p.sinkStore, SOURCE_NAME, 'data'),
      sshd: started,
      dataUser,
      logUser,
      bareRsh,
      remote: `${users.data}@127.0.0.1`,
      writeKeys,
      close: async (keep) => {
        await started.stop();
        // no key of this run may log in after it
        await writeAuthorizedKeys(dataUser, []);
        await writeAuthorizedKeys(logUser, []);
        if (!keep) await removeTree(root);
      },
    };
  } catch (e) {
    await sshd?.stop();
    await removeTree(root);
    throw e;
  }
}

/**
 * The sink store as `baton install sink` leaves it: the directory and its marker file (pulls refuse
 * a store without it). The benchmark removes the store between runs, so each pull calls this.
 */
export async function markSinkStore(env: Pick<BenchEnv, 'sinkStore'>): Promise<void> {
  await mkdir(env.sinkStore, { recursive: true, mode: 0o750 });
  await writeFile(join(env.sinkStore, STORE_MARKER), STORE_MARKER_CONTENT, { mode: 0o644 });
}

/** `rm -rf`: much faster than fs.rm on a million files, and its memory stays out of this process. */
export async function removeTree(path: string): Promise<void> {
  const r = await runProcess(['rm', '-rf', '--one-file-system', '--', path], { timeoutMs: 3600_000 });
  if (r.code !== 0) throw new Error(`rm -rf ${path} failed: ${r.stderr.trim()}`);
}

/** Generation ids (complete, not dot-names) in `dir`, oldest first. */
export async function generationIds(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((n) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(n)).sort();
}

/** Where generation `id` of the data stream is now on the source (handover until acked, then the store). */
export function sourceGenerationDir(env: BenchEnv, id: string): string {
  const h = join(env.handoverData, id);
  return existsSync(h) ? h : join(env.sourceStore, id);
}

/** Puts an acked data generation back into the handover, so that it can be pulled again. */
export async function unack(env: BenchEnv, id: string): Promise<void> {
  const stored = join(env.sourceStore, id);
  if (existsSync(stored)) await rename(stored, join(env.handoverData, id));
}

/** Removes all but the newest log generation from the handover (the benchmark pulls data only). */
export async function trimLogHandover(env: BenchEnv): Promise<void> {
  const ids = await generationIds(env.handoverLogs);
  for (const id of ids.slice(0, -1)) await removeTree(join(env.handoverLogs, id));
}

/** Back to "nothing backed up yet": no mirror, generations, sink store or bare copies (app data stays). */
export async function resetStores(env: BenchEnv): Promise<void> {
  for (const d of [
    env.sourceState,
    env.handoverData,
    env.handoverLogs,
    env.sourceStore,
    env.sinkStore,
    env.sinkState,
    env.bareMirror,
    env.bareSink,
  ]) {
    await removeTree(d);
  }
}
