/**
 * The setup the end-to-end tests of the sink and the gate share: a temp root, real system users,
 * ssh key pairs, a real sshd on 127.0.0.1, a real SMTP server, the `authorized_keys` line that
 * forces `baton gate`, a sink config, and (for tests that hand-craft what a source serves) a
 * handover + source store owned by the stream user with a minimal source config. One `stop()`
 * ends and removes all of it.
 *
 *   const e = await startE2e({ prefix: 'baton-x-', users: { data: 'bzXData' }, keys: ['data'], smtp: true });
 *   const g = await makeGateFixture(e, { source: 'x', baseDay: Date.UTC(2026, 0, 1) });
 *   const sink = await writeSinkConfig(join(e.root, 'sink.yaml'), { store: g.H.sinkStore, ... });
 */
import assert from 'node:assert/strict';
import { chmod, lchown, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { RunResult } from '../../src/adapters/run.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { BATON_MAIN, runBaton, show } from './cli.js';
import { writeGeneration, type GenerationOptions, type WrittenGeneration } from './gate-fixtures.js';
import { makeSinkStore } from './sink-store.js';
import { startSmtp, type SmtpSink } from './smtp.js';
import { startSshd, type Sshd, type SshdOptions } from './sshd.js';
import { ensureUser, makeKeyPair, writeAuthorizedKeys, type KeyPair, type TestUser } from './users.js';

export type Stream = 'data' | 'logs';

export interface E2eOptions {
  /** mkdtemp prefix in the temp dir, e.g. `baton-ack-proof-` */
  prefix: string;
  /** stream users to create (ensureUser), by stream */
  users?: Partial<Record<Stream, string>>;
  /** key pairs to make in `<root>/keys` (0700), by name */
  keys?: readonly string[];
  /** start sshd (default: when keys are made); an object passes its options */
  sshd?: boolean | SshdOptions;
  smtp?: boolean;
}

export interface E2e {
  /** the temp root, 0755 (the stream users read below it) */
  root: string;
  users: Partial<Record<Stream, TestUser>>;
  keys: Record<string, KeyPair>;
  /** the started sshd / SMTP server (throws when not started) */
  readonly sshd: Sshd;
  readonly smtp: SmtpSink;
  /** the user of a stream (throws when it was not created) */
  user(stream: Stream): TestUser;
  key(name: string): KeyPair;
  /** creates another user; it is kept in `users[stream]` when a stream is given */
  addUser(name: string, stream?: Stream): Promise<TestUser>;
  /** makes another key pair in `<root>/keys` */
  addKey(name: string): Promise<KeyPair>;
  startSshd(opts?: SshdOptions): Promise<Sshd>;
  /** runs `fn` first on stop (last registered, first run): apps to kill, mounts to undo */
  onStop(fn: () => unknown): void;
  /** the onStop functions, sshd, SMTP, then the temp root */
  stop(): Promise<void>;
}

export async function startE2e(o: E2eOptions): Promise<E2e> {
  const root = await mkdtemp(join(tmpdir(), o.prefix));
  await chmod(root, 0o755);
  const cleanups: Array<() => unknown> = [];
  let sshd: Sshd | undefined;
  let smtp: SmtpSink | undefined;
  let keysDir: string | undefined;
  const e: E2e = {
    root,
    users: {},
    keys: {},
    get sshd(): Sshd {
      if (!sshd) throw new Error('e2e harness: sshd not started');
      return sshd;
    },
    get smtp(): SmtpSink {
      if (!smtp) throw new Error('e2e harness: smtp not started');
      return smtp;
    },
    user(stream) {
      const u = e.users[stream];
      if (!u) throw new Error(`e2e harness: no ${stream} user`);
      return u;
    },
    key(name) {
      const k = e.keys[name];
      if (!k) throw new Error(`e2e harness: no key ${name}`);
      return k;
    },
    async addUser(name, stream) {
      const u = await ensureUser(name);
      if (stream) e.users[stream] = u;
      return u;
    },
    async addKey(name) {
      if (keysDir === undefined) {
        keysDir = join(root, 'keys');
        await mkdir(keysDir, { mode: 0o700 });
      }
      const k = await makeKeyPair(keysDir, name);
      e.keys[name] = k;
      return k;
    },
    async startSshd(opts = {}) {
      sshd = await startSshd(opts);
      return sshd;
    },
    onStop(fn) {
      cleanups.push(fn);
    },
    async stop() {
      for (const fn of cleanups.reverse()) await fn();
      await sshd?.stop();
      await smtp?.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
  if (o.smtp) smtp = await startSmtp();
  for (const [stream, name] of Object.entries(o.users ?? {}) as Array<[Stream, string]>)
    await e.addUser(name, stream);
  for (const name of o.keys ?? []) await e.addKey(name);
  const wantSshd = o.sshd ?? (o.keys ?? []).length > 0;
  if (wantSshd !== false) await e.startSshd(typeof wantSshd === 'object' ? wantSshd : {});
  return e;
}

/** The forced command a stream key gets on the source: `baton gate <stream>` with that source config. */
export function gateCommand(stream: Stream, sourceConfig: string): string {
  return `'${process.execPath}' '${BATON_MAIN}' gate ${stream} --config '${sourceConfig}'`;
}

/** The `authorized_keys` line for a stream key: restricted, forced to the gate. */
export function gateLine(stream: Stream, sourceConfig: string, key: KeyPair): string {
  return `restrict,command="${gateCommand(stream, sourceConfig)}" ${key.publicKey}`;
}

export interface SinkStreamConfig {
  user: string;
  identity: string;
  generations?: number;
}

export interface SinkConfigOptions {
  store: string;
  stateDir: string;
  sshd: Sshd;
  sources: ReadonlyArray<{ name: string; streams: Partial<Record<Stream, SinkStreamConfig>> }>;
  verify?: boolean;
  timeout?: string;
  storeMode?: string;
  /** the inside of `limits: { … }`, e.g. `maxFiles: 100` */
  limits?: string;
  /** alert mail to this SMTP url */
  mailUrl?: string;
  /** more lines under `alerts:` (indented two spaces), before the mail */
  alerts?: string;
}

/** Writes a sink config for sources behind `sshd`; returns its path. */
export async function writeSinkConfig(file: string, o: SinkConfigOptions): Promise<string> {
  const lines = [`store: ${o.store}`, `stateDir: ${o.stateDir}`];
  if (o.storeMode !== undefined) lines.push(`storeMode: ${o.storeMode}`);
  if (o.verify !== undefined) lines.push(`verify: ${o.verify}`);
  if (o.timeout !== undefined) lines.push(`timeout: ${o.timeout}`);
  if (o.limits !== undefined) lines.push(`limits: { ${o.limits} }`);
  lines.push('sources:');
  for (const s of o.sources) {
    lines.push(
      `  - name: ${s.name}`,
      '    host: 127.0.0.1',
      `    port: ${o.sshd.port}`,
      `    knownHosts: ${o.sshd.knownHostsFile}`,
      '    streams:',
    );
    for (const [stream, c] of Object.entries(s.streams) as Array<[Stream, SinkStreamConfig]>)
      lines.push(
        `      ${stream}: { user: ${c.user}, identity: ${c.identity}, generations: ${c.generations ?? 3} }`,
      );
  }
  if (o.mailUrl !== undefined || o.alerts !== undefined) {
    lines.push('alerts:');
    if (o.alerts !== undefined) lines.push(`  ${o.alerts}`);
    if (o.mailUrl !== undefined)
      lines.push(`  mail: { to: [ops@example.com], from: baton@sink, smtp: "${o.mailUrl}" }`);
  }
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** Changes the owner of a tree (not following symlinks) to `user`. */
export async function chownTree(path: string, user: TestUser): Promise<void> {
  await lchown(path, user.uid, user.gid);
  if ((await lstat(path)).isDirectory()) {
    for (const name of await readdir(path)) await chownTree(join(path, name), user);
  }
}

export interface GateFixtureOptions {
  /** the source's name */
  source: string;
  /** the day generation ids count minutes from (nextId), e.g. Date.UTC(2026, 0, 1) */
  baseDay: number;
  /** a logs stream too (handover/logs owned by the logs user) */
  logs?: boolean;
  /** mode of the handover dirs and the source store (default 0755, set exactly) */
  dirMode?: number;
  /** source store generations (default 50) */
  generations?: number;
  /** alert mail from the source through the harness's SMTP server */
  sourceMail?: boolean;
  /** the harness keys each stream user's authorized_keys forces to the gate (default: keys `data`, `logs`) */
  keyNames?: Partial<Record<Stream, string>>;
}

export interface GateFixture {
  /** handovers, source store, sink store (with its marker), the sink's dir of this source's data, sink state */
  H: { data: string; logs: string; store: string; sinkStore: string; sinkData: string; sinkState: string };
  sourceConfig: string;
  /** a new generation id, later than every one before (the sink pulls oldest first) */
  nextId(): string;
  /** writes a generation into the data handover, owned by the data user like the real thing */
  stage(opts?: GenerationOptions, id?: string): Promise<WrittenGeneration>;
  /** the authorized_keys line of the data key, forced to this source's gate */
  gateLine(stream?: Stream): string;
  /** (re)writes every stream user's authorized_keys with its gate line */
  authorize(): Promise<void>;
}

/**
 * A source whose handover is filled by hand (hostile or odd generations, written by writeGeneration)
 * and served by the real gate: `<root>/handover/data` (and `logs`) and `<root>/source-store` owned by
 * the stream user, a source config (no app: stop and start are `true`), the stream users' keys forced
 * to the gate, and an empty sink store at `<root>/sink-store`.
 */
export async function makeGateFixture(e: E2e, o: GateFixtureOptions): Promise<GateFixture> {
  const { root } = e;
  const mode = o.dirMode ?? 0o755;
  const sinkStore = await makeSinkStore(join(root, 'sink-store'));
  const H = {
    data: join(root, 'handover', 'data'),
    logs: o.logs ? join(root, 'handover', 'logs') : '',
    store: join(root, 'source-store'),
    sinkStore,
    sinkData: join(sinkStore, o.source, 'data'),
    sinkState: join(root, 'sink-state'),
  };
  await mkdir(join(root, 'handover'), { mode: 0o755 });
  const owned: Array<[string, TestUser]> = [
    [H.data, e.user('data')],
    [H.store, e.user('data')],
  ];
  if (o.logs) owned.push([H.logs, e.user('logs')]);
  for (const [dir, user] of owned) {
    await mkdir(dir, { mode });
    await chmod(dir, mode); // readable by everyone: rrsync, not file modes, keeps the streams apart
    await lchown(dir, user.uid, user.gid);
  }
  const sourceConfig = join(root, 'source.yaml');
  const dataUser = e.user('data').name;
  await writeFile(
    sourceConfig,
    `name: ${o.source}
stateDir: ${join(root, 'source-state')}
app: { stop: ["true"], start: ["true"] }
streams:
  data: { paths: [${join(root, 'app-data')}], handover: ${H.data}, user: ${dataUser}, store: ${H.store}, generations: ${o.generations ?? 50} }
${o.logs ? `  logs: { paths: [${join(root, 'app-logs')}], handover: ${H.logs}, user: ${e.user('logs').name} }\n` : ''}${
      o.sourceMail
        ? `alerts:\n  mail: { to: [ops@example.com], from: baton@source, smtp: "${e.smtp.url}" }\n`
        : ''
    }`,
  );
  await chmod(sourceConfig, 0o644);
  let minute = 0;
  const keyOf = (stream: Stream) => e.key(o.keyNames?.[stream] ?? stream);
  const g: GateFixture = {
    H,
    sourceConfig,
    nextId: () => formatGenerationId(new Date(o.baseDay + 60_000 * minute++)),
    async stage(opts = {}, id = g.nextId()) {
      const w = await writeGeneration(H.data, id, { source: o.source, stream: 'data', ...opts });
      await chownTree(w.dir, e.user('data'));
      return w;
    },
    gateLine: (stream = 'data') => gateLine(stream, sourceConfig, keyOf(stream)),
    async authorize() {
      await writeAuthorizedKeys(e.user('data'), [g.gateLine('data')]);
      if (o.logs) await writeAuthorizedKeys(e.user('logs'), [g.gateLine('logs')]);
    },
  };
  await g.authorize();
  return g;
}

export interface GateE2eOptions {
  /** mkdtemp prefix in the temp dir */
  prefix: string;
  /** the data stream's user (created; the key `data` is forced to the gate) */
  user: string;
  /** the source's name */
  source: string;
  /** the day generation ids count minutes from (see {@link GateFixtureOptions}) */
  baseDay: number;
  dirMode?: number;
  /** a real SMTP server; the sink configs then mail their alerts to it */
  smtp?: boolean;
  /** the data stream's `generations` in the sink config (default 50) */
  generations?: number;
  /** the sink config's other keys */
  sink?: Pick<SinkConfigOptions, 'verify' | 'timeout' | 'limits' | 'alerts' | 'storeMode'>;
}

export interface GateE2e {
  e: E2e;
  fx: GateFixture;
  /** `<root>/sink.yaml`: the one source's data stream behind the harness's sshd */
  sinkConfig: string;
  /** writes a sink config like `sinkConfig` with other keys (default: the options' `sink`); returns `file` */
  writeSink: (file: string, keys?: GateE2eOptions['sink']) => Promise<string>;
}

/**
 * The setup of a test that pulls one source's data stream through the real gate: {@link startE2e}
 * (the data user, its key, sshd, optionally SMTP), {@link makeGateFixture} and a sink config.
 */
export async function startGateE2e(o: GateE2eOptions): Promise<GateE2e> {
  const e = await startE2e({
    prefix: o.prefix,
    users: { data: o.user },
    keys: ['data'],
    smtp: o.smtp === true,
  });
  try {
    const fx = await makeGateFixture(e, {
      source: o.source,
      baseDay: o.baseDay,
      ...(o.dirMode === undefined ? {} : { dirMode: o.dirMode }),
    });
    const writeSink = (file: string, keys = o.sink ?? {}) =>
      writeSinkConfig(file, {
        store: fx.H.sinkStore,
        stateDir: fx.H.sinkState,
        sshd: e.sshd,
        ...keys,
        sources: [
          {
            name: o.source,
            streams: {
              data: { user: o.user, identity: e.key('data').privateKey, generations: o.generations ?? 50 },
            },
          },
        ],
        ...(o.smtp === true ? { mailUrl: e.smtp.url } : {}),
      });
    return { e, fx, sinkConfig: await writeSink(join(e.root, 'sink.yaml')), writeSink };
  } catch (err) {
    await e.stop();
    throw err;
  }
}

/** One stream's outcome in `baton sink pull --json`. */
export const pullOutcomeSchema = z.object({
  source: z.string(),
  stream: z.string(),
  ok: z.boolean(),
  locked: z.boolean(),
  pulled: z.array(z.string()),
  acked: z.array(z.string()),
  quarantined: z.array(z.string()),
  error: z.string().optional(),
});
export type PullOutcome = z.infer<typeof pullOutcomeSchema>;

/**
 * `baton sink pull <stream> --json` with `config`: asserts it did not hang and printed one outcome;
 * resolves with the run and that outcome.
 */
export async function pullJson(
  config: string,
  opts: { stream?: Stream; timeoutMs?: number } = {},
): Promise<{ r: RunResult; o: PullOutcome }> {
  const r = await runBaton(['sink', 'pull', opts.stream ?? 'data', '--config', config, '--json'], {
    timeoutMs: opts.timeoutMs ?? 90_000,
  });
  assert.equal(r.timedOut, false, `sink pull hung: ${show(r)}`);
  const parsed = z.array(pullOutcomeSchema).safeParse(JSON.parse(r.stdout || 'null'));
  assert.ok(parsed.success, `--json output: ${show(r)}`);
  const [o] = parsed.data;
  assert.ok(o, show(r));
  return { r, o };
}
