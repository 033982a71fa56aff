import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { createFakeApp, type FakeApp } from '../helpers/fake-app.js';
import { gateLine, startE2e, writeSinkConfig, type E2e } from '../helpers/e2e.js';
import { type Sshd } from '../helpers/sshd.js';
import { writeAuthorizedKeys, type KeyPair, needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { alive, pgrpOf } from '../helpers/procs.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// Issue 10 hole 13 (sink side): a sink pull's rsync and its `ssh … ack` run in process groups of
// their own, so killing baton's group leaves them running: an rsync kept writing into .incoming,
// an orphaned ack reached the gate after its pull was killed. The run records them; the next pull
// ends them before it touches the store or the gate. Real sshd, restricted user, real gate.
const NEEDS_ROOT = needsRootOrSkipFile('killed-run-sink', 'creates users, runs sshd');

const USER = 'bzEKrkData';
let e: E2e;
let root: string;
let sshd: Sshd;
let app: FakeApp;
let key: KeyPair;
let sourceConfig: string;
let sinkConfig: string;
let sinkState: string;
let bin: string;
const H = { data: '', store: '', sinkStore: '' };
const F = {
  ackArm: '',
  rsyncMark: '',
  rsyncPid: '',
  rsyncVerdict: '',
  ackMark: '',
  ackPid: '',
  ackVerdict: '',
  delivered: '',
};

before(async () => {
  if (NEEDS_ROOT) return;
  e = await startE2e({ prefix: 'baton-killed-sink-', users: { data: USER }, keys: ['data'] });
  ({ root, sshd } = e);
  const user = e.user('data');
  key = e.key('data');
  app = createFakeApp(join(root, 'app'));
  e.onStop(() => app.kill());
  await runProcess(['/bin/sh', '-c', app.startCmd], { timeoutMs: 20_000 });
  H.data = join(root, 'handover', 'data');
  H.store = join(root, 'source-store');
  H.sinkStore = await makeSinkStore(join(root, 'sink-store'));
  sourceConfig = join(root, 'source.yaml');
  await writeFile(
    sourceConfig,
    `name: shop
stateDir: ${join(root, 'source-state')}
app: { stop: ${JSON.stringify(app.stopCmd)}, start: ${JSON.stringify(app.startCmd)}, healthCheck: ${JSON.stringify(app.healthCmd)} }
streams:
  data: { paths: [${app.dataDir}], handover: ${H.data}, user: ${USER}, store: ${H.store}, generations: 3 }
`,
  );
  await chmod(sourceConfig, 0o644);
  await writeAuthorizedKeys(user, [gateLine('data', sourceConfig, key)]);
  sinkState = join(root, 'sink-state');
  sinkConfig = await writeSinkConfig(join(root, 'sink.yaml'), {
    store: H.sinkStore,
    stateDir: sinkState,
    sshd,
    verify: true,
    sources: [{ name: 'shop', streams: { data: { user: USER, identity: key.privateKey, generations: 3 } } }],
  });
  bin = await wrappers();
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

/** Shell test: is the pid in file $1 alive (not a zombie)? Appends alive|gone to file $2. */
const VERDICT = `verdict() { st=$(cut -d')' -f2 /proc/$(cat "$1")/stat 2>/dev/null | cut -d' ' -f2); if [ -n "$st" ] && [ "$st" != Z ]; then echo alive >> "$2"; else echo gone >> "$2"; fi; }`;

/**
 * `rsync` and `ssh` first on the sink pull's PATH. The gate refuses a `session` here, as a gate of an
 * older baton does, so that each ack has an `ssh … ack` of its own (a session's ssh is recorded the same way). The first tree pull becomes a writer into
 * .incoming that never ends; the first `ack` once armed waits 8 s (a slow link) before it goes to the gate
 * and notes that it did. Later calls note whether those are still alive when they start, then run
 * the real programs.
 */
async function wrappers(): Promise<string> {
  const dir = join(root, 'bin');
  await mkdir(dir, { recursive: true });
  for (const k of Object.keys(F) as Array<keyof typeof F>) F[k] = join(root, `w-${k}`);
  await writeFile(
    join(dir, 'rsync'),
    `#!/bin/sh
${VERDICT}
case "$*" in *--delete*)
  if [ ! -e '${F.rsyncMark}' ]; then
    : > '${F.rsyncMark}'
    echo $$ > '${F.rsyncPid}'
    for last; do :; done
    mkdir -p "$last"
    while :; do date >> "$last/.written-by-the-killed-run"; sleep 0.05; done
  fi
  verdict '${F.rsyncPid}' '${F.rsyncVerdict}'
;; esac
exec /usr/bin/rsync "$@"
`,
    { mode: 0o755 },
  );
  await writeFile(
    join(dir, 'ssh'),
    `#!/bin/sh
${VERDICT}
for last; do :; done
case "$last" in
  "ack "*)
    if [ -e '${F.ackArm}' ] && [ ! -e '${F.ackMark}' ]; then
      : > '${F.ackMark}'
      echo $$ > '${F.ackPid}'
      sleep 8
      echo "$last" >> '${F.delivered}'
    fi ;;
  list|list-head) [ -e '${F.ackPid}' ] && verdict '${F.ackPid}' '${F.ackVerdict}' ;;
  # plays a gate without sessions: each request (the ack above among them) has an ssh of its own
  session) echo 'baton gate: refused: not an allowed command (allowed: list, list-head, ack ID SHA256)' >&2; exit 1 ;;
esac
exec /usr/bin/ssh "$@"
`,
    { mode: 0o755 },
  );
  return dir;
}

const env = () => ({ PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
const ids = async (dir: string) =>
  existsSync(dir) ? (await readdir(dir)).filter((n) => !n.startsWith('.')).sort() : [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const childrenFile = () => join(sinkState, 'runs', 'shop-data.children.json');

async function backup(): Promise<string> {
  const r = await runBaton(['source', 'backup', '--config', sourceConfig]);
  assert.equal(r.code, 0, show(r));
  const pending = await ids(H.data);
  assert.ok(pending.length > 0);
  return pending.at(-1)!;
}

/** Starts `baton sink pull data`; once `pidFile` appears, SIGKILLs baton's whole process group. */
async function killPullAt(pidFile: string): Promise<number> {
  let batonPid = 0;
  const run: Promise<RunResult> = runProcess(
    [process.execPath, BATON_MAIN, 'sink', 'pull', 'data', '--config', sinkConfig],
    { env: { ...process.env, ...env() }, timeoutMs: 120_000, onSpawn: (pid) => (batonPid = pid) },
  );
  for (let i = 0; i < 600 && !existsSync(pidFile); i++) await sleep(100);
  assert.ok(existsSync(pidFile), 'the pull reached the point');
  const child = Number((await readFile(pidFile, 'utf8')).trim());
  // the record is written right after the spawn; the child may write its pid first (a loaded machine)
  let recorded: { children: Array<{ pgid: number }> } = { children: [] };
  for (let i = 0; i < 100 && !recorded.children.some((c) => c.pgid === pgrpOf(child)); i++) {
    if (i > 0) await sleep(50);
    if (existsSync(childrenFile()))
      recorded = JSON.parse(await readFile(childrenFile(), 'utf8')) as typeof recorded;
  }
  assert.ok(
    recorded.children.some((c) => c.pgid === pgrpOf(child)),
    `its process group is recorded: ${JSON.stringify(recorded)}`,
  );
  process.kill(-batonPid, 'SIGKILL');
  const r = await run;
  assert.equal(r.signal, 'SIGKILL', show(r));
  await sleep(300);
  assert.ok(alive(child), 'the child of the killed run is still running after the kill');
  return child;
}

test(
  'hole 13: baton killed mid-pull -> the next pull ends the rsync still writing into .incoming before it touches the store, and completes',
  { skip: NEEDS_ROOT },
  async () => {
    const id = await backup();
    const writer = await killPullAt(F.rsyncPid);
    assert.deepEqual(await ids(join(H.sinkStore, 'shop', 'data')), [], 'nothing published by the killed run');

    const r = await runBaton(['sink', 'pull', 'data', '--config', sinkConfig], { env: env() });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /ending processes a killed run left running: .*rsync/);
    assert.deepEqual(
      (await readFile(F.rsyncVerdict, 'utf8')).trim().split('\n'),
      ['gone'],
      'no writer of the killed run was alive when the next pull started its transfer',
    );
    assert.equal(alive(writer), false);
    assert.ok((await ids(join(H.sinkStore, 'shop', 'data'))).includes(id), 'published');
    assert.equal(existsSync(join(H.sinkStore, 'shop', 'data', id, '.written-by-the-killed-run')), false);
    assert.ok((await ids(H.store)).includes(id), 'acked: moved to the source store');
    assert.equal(existsSync(childrenFile()), false, 'no record left after a clean run');
  },
);

test(
  'hole 13: an `ssh … ack` orphaned by a killed pull is ended by the next pull before it reaches the gate; the next pull acks',
  { skip: NEEDS_ROOT },
  async () => {
    const id = await backup();
    await writeFile(F.ackArm, '');
    const killedAt = Date.now();
    const acker = await killPullAt(F.ackPid);
    assert.ok((await ids(join(H.sinkStore, 'shop', 'data'))).includes(id), 'published before the ack');
    assert.ok((await ids(H.data)).includes(id), 'not acked yet');

    const r = await runBaton(['sink', 'pull', 'data', '--config', sinkConfig], { env: env() });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /ending processes a killed run left running: .*ssh/);
    assert.deepEqual((await readFile(F.ackVerdict, 'utf8')).trim().split('\n'), ['gone']);
    assert.equal(alive(acker), false);
    assert.ok((await ids(H.store)).includes(id), 'the next pull acked it');
    // the orphan would have sent its ack 8 s after it started: it never does
    await sleep(Math.max(0, killedAt + 9000 - Date.now()));
    assert.equal(existsSync(F.delivered), false, 'the orphaned ack never reached the gate');
    assert.equal(existsSync(childrenFile()), false);
  },
);
