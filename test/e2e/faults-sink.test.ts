import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  makeKeyPair,
  makeUserCA,
  signUserKey,
  writeAuthorizedKeys,
  type KeyPair,
  needsRootOrSkipFile,
} from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// Faults on the sink (issue "Faults", cases 11, 12, 18, 19, 20, 25) over a real sshd: the sink store
// never loses a verified generation, nothing is acked or pruned after a failure, reruns converge.
const NEEDS_ROOT = needsRootOrSkipFile('faults-sink', 'users, sshd, tmpfs');

const USERS = { data: 'batonFsData', logs: 'batonFsLogs' };
let root: string;
let smtp: SmtpSink;
let sshd: Sshd;
let src: SourceSetup;
let dataKey: KeyPair;
let logKey: KeyPair;
let strangerKey: KeyPair;
let expiredKey: KeyPair;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-sinkfaults-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  const dataUser = await ensureUser(USERS.data);
  const logUser = await ensureUser(USERS.logs);
  const keys = join(root, 'keys');
  dataKey = await makeKeyPair(keys, 'data');
  logKey = await makeKeyPair(keys, 'logs');
  strangerKey = await makeKeyPair(keys, 'stranger');
  expiredKey = await makeKeyPair(keys, 'expired');
  const ca = await makeUserCA(keys);
  await signUserKey(ca, expiredKey.publicKeyFile, {
    principals: [USERS.data],
    validity: '20200101:20200102',
  });
  sshd = await startSshd();
  src = await makeSourceSetup(root, { name: 'shop', dataUser: USERS.data, logsUser: USERS.logs });
  const gate = (stream: string) =>
    `restrict,command="${process.execPath} ${BATON_MAIN} gate ${stream} --config ${src.config}"`;
  await writeAuthorizedKeys(dataUser, [
    `${gate('data')} ${dataKey.publicKey}`,
    `cert-authority,principals="${USERS.data}",${gate('data')} ${ca.publicKey}`,
  ]);
  await writeAuthorizedKeys(logUser, [`${gate('logs')} ${logKey.publicKey}`]);
});

after(async () => {
  if (NEEDS_ROOT) return;
  src.app.kill();
  await sshd.stop();
  await smtp.stop();
  await runProcess(['sh', '-c', `for m in $(grep -o ' ${root}/[^ ]*' /proc/mounts); do umount $m; done`]);
  await rm(root, { recursive: true, force: true });
});

interface SinkOpts {
  name: string;
  store?: string;
  dataIdentity?: string;
  extraSources?: string;
  maxBytes?: number;
}

async function sinkConfig(o: SinkOpts): Promise<{ file: string; store: string }> {
  const store = await makeSinkStore(o.store ?? join(root, `store-${o.name}`));
  const file = join(root, `sink-${o.name}.yaml`);
  await writeFile(
    file,
    `store: ${store}
stateDir: ${join(root, `state-${o.name}`)}
${o.maxBytes ? `limits: { maxBytes: ${o.maxBytes} }\n` : ''}sources:
  - name: shop
    host: 127.0.0.1
    port: ${sshd.port}
    knownHosts: ${sshd.knownHostsFile}
    streams:
      data: { user: ${USERS.data}, identity: ${o.dataIdentity ?? dataKey.privateKey}, generations: 2 }
      logs: { user: ${USERS.logs}, identity: ${logKey.privateKey}, generations: 2 }
${o.extraSources ?? ''}alerts:
  mail: { to: [ops@example.com], from: baton@sink, smtp: "${smtp.url}" }
`,
  );
  return { file, store };
}

const backup = async () => {
  const r = await runBaton(['source', 'backup', '--config', src.config]);
  assert.equal(r.code, 0, show(r));
  await sleep(1100);
};
const pull = (file: string, stream: 'data' | 'logs', env: NodeJS.ProcessEnv = {}) =>
  runBaton(['sink', 'pull', stream, '--config', file], { env });

/** Empties the handovers (pull both streams with a plain config) so each test starts clean. */
async function drain(): Promise<void> {
  const { file } = await sinkConfig({ name: 'drain' });
  for (const s of ['data', 'logs'] as const) assert.equal((await pull(file, s)).code, 0);
}

test(
  'case 11: one source unreachable -> the other is pulled, exit 1, alert names it',
  { skip: NEEDS_ROOT },
  async () => {
    await backup();
    const { file, store } = await sinkConfig({
      name: 'multi',
      extraSources: `  - name: ghost\n    host: 127.0.0.1\n    port: 9\n    knownHosts: ${sshd.knownHostsFile}\n    streams:\n      data: { user: ${USERS.data}, identity: ${dataKey.privateKey}, generations: 2 }\n`,
    });
    const n = smtp.messages.length;
    const r = await pull(file, 'data');
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /shop\/data: ok: pulled/);
    assert.match(r.stdout, /ghost\/data: FAILED: .*source unreachable/);
    assert.equal((await generationIds(join(store, 'shop', 'data'))).length, 1);
    const mails = await smtp.waitFor(n + 1);
    assert.match(mails.at(-1)!.subject, /pull of data FAILED for ghost/);
    await drain();
  },
);

test(
  'case 11: refused key and expired certificate -> nothing pulled or acked',
  { skip: NEEDS_ROOT },
  async () => {
    await backup();
    const pending = await generationIds(src.handoverData);
    for (const [name, identity] of [
      ['stranger', strangerKey.privateKey],
      ['expired', expiredKey.privateKey],
    ] as const) {
      const { file, store } = await sinkConfig({ name, dataIdentity: identity });
      const r = await pull(file, 'data');
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /authentication refused/);
      assert.deepEqual(await generationIds(src.handoverData), pending, 'still pending');
      assert.deepEqual(await generationIds(join(store, 'shop', 'data')), []);
    }
    await drain();
  },
);

for (const point of ['sink-verified', 'sink-published', 'sink-pruned', 'sink-acked']) {
  test(
    `case 20: SIGKILL at ${point} -> the rerun converges, acked once, nothing lost or doubled`,
    { skip: NEEDS_ROOT },
    async () => {
      const { file, store } = await sinkConfig({ name: `kill-${point}` });
      await backup();
      const first = await pull(file, 'data');
      assert.equal(first.code, 0, show(first));
      await backup();
      const [id] = await generationIds(src.handoverData);
      assert.ok(id);
      const killed = await pull(file, 'data', { BATON_CRASH_AT: point });
      assert.equal(killed.signal, 'SIGKILL', show(killed));
      const again = await pull(file, 'data');
      assert.equal(again.code, 0, show(again));
      const sinkIds = await generationIds(join(store, 'shop', 'data'));
      assert.ok(sinkIds.includes(id), 'the generation is in the sink store');
      assert.equal(sinkIds.length, 2, `exactly the configured count: ${sinkIds.join(' ')}`);
      assert.deepEqual(await generationIds(src.handoverData), [], 'acked: left the handover');
      assert.ok((await generationIds(src.store)).includes(id), 'moved into the source store');
      const leftovers = (await readdir(join(store, 'shop', 'data'))).filter(
        (n) => n.startsWith('.') && n !== '.incoming',
      );
      assert.deepEqual(leftovers, []);
      assert.deepEqual(await readdir(join(store, 'shop', 'data', '.incoming')).catch(() => []), []);
      const c = await runProcess(['sh', '-c', 'cd tree && sha256sum --quiet -c ../SHA256SUMS'], {
        cwd: join(store, 'shop', 'data', id),
      });
      assert.equal(c.code, 0, c.stderr);
      await drain();
    },
  );
}

test(
  'case 12: a pull interrupted mid-transfer leaves .incoming; the next run resumes and completes',
  { skip: NEEDS_ROOT },
  async () => {
    const { file, store } = await sinkConfig({ name: 'resume' });
    await backup();
    const [id] = await generationIds(src.handoverData);
    // what a killed rsync leaves: part of the tree, one file truncated
    const inc = join(store, 'shop', 'data', '.incoming', id!);
    await mkdir(inc, { recursive: true });
    const r0 = await runProcess(['rsync', '-a', `${join(src.handoverData, id!)}/`, `${inc}/`]);
    assert.equal(r0.code, 0);
    const counter = join(inc, 'tree', src.app.dataDir.slice(1), 'counter.txt');
    await writeFile(counter, 'trunc');
    await unlink(join(inc, 'manifest'));
    const r = await pull(file, 'data');
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await generationIds(join(store, 'shop', 'data')), [id]);
    await drain();
  },
);

test(
  'cases 18/19/25: quota and a full sink disk -> not pulled, nothing deleted, alert; logs unaffected',
  { skip: NEEDS_ROOT },
  async () => {
    const fs = join(root, 'tmpfs');
    await mkdir(fs, { recursive: true });
    const m = await runProcess(['mount', '-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', fs]);
    assert.equal(m.code, 0, m.stderr);
    const { file, store } = await sinkConfig({ name: 'full', store: fs });
    await backup();
    assert.equal((await pull(file, 'data')).code, 0, 'a first small generation fits');
    const before = await generationIds(join(store, 'shop', 'data'));
    assert.equal(before.length, 1);
    await writeFile(join(src.app.dataDir, 'big.bin'), Buffer.alloc(8 * 2 ** 20, 7));
    await backup();
    const n = smtp.messages.length;
    const r = await pull(file, 'data');
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      /needs about [89] MiB new .* only [0-9]+ MiB free; not pulled, nothing deleted to make room/,
    );
    assert.deepEqual(
      await generationIds(join(store, 'shop', 'data')),
      before,
      'the store is unchanged, no prune',
    );
    assert.equal((await generationIds(src.handoverData)).length, 1, 'not acked');
    assert.deepEqual(await readdir(join(store, 'shop', 'data', '.incoming')), [], 'no partial copy left');
    await smtp.waitFor(n + 1);
    // the logs stream is not held up by the data stream's failure
    const logs = await pull(file, 'logs');
    assert.equal(logs.code, 0, show(logs));
    // a quota below the generation's size refuses it before the tree moves
    const q = await sinkConfig({ name: 'quota', maxBytes: 1024 * 1024 });
    const rq = await pull(q.file, 'data');
    assert.equal(rq.code, 1, show(rq));
    assert.match(rq.stderr, /over limits\.maxBytes \(1048576\); not pulled/);
    assert.deepEqual(await generationIds(join(q.store, 'shop', 'data')), []);
    await unlink(join(src.app.dataDir, 'big.bin'));
    await drain();
  },
);

test(
  'case 10 (sink): a pull of a source+stream whose lock is held by a live run exits 75, others go on',
  { skip: NEEDS_ROOT },
  async () => {
    const { file, store } = await sinkConfig({ name: 'locked' });
    await backup();
    const lockDir = join(root, 'state-locked', 'locks');
    await mkdir(lockDir, { recursive: true });
    await writeFile(
      join(lockDir, 'shop-data.lock'),
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        startedAt: new Date().toISOString(),
        command: 'test',
      }),
    );
    const r = await pull(file, 'data');
    assert.equal(r.code, 75, show(r));
    assert.match(r.stdout, /shop\/data: skipped: another run holds the lock/);
    assert.deepEqual(await generationIds(join(store, 'shop', 'data')), []);
    const logs = await pull(file, 'logs');
    assert.equal(logs.code, 0, 'the logs stream has its own lock');
    await unlink(join(lockDir, 'shop-data.lock'));
    await drain();
  },
);
