import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { ensureUser, isRoot } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import {
  generationIds,
  makeSourceSetup,
  sleep,
  workDirs,
  type SourceSetup,
} from '../helpers/source-setup.js';

// Issue #14: `collect: snapshot` (btrfs) and `collect: command` (snapshot hooks, here made of btrfs
// commands) on a real btrfs loop image, driven through the built CLI with a real app, real SMTP.

const USERS = { data: 'bzNSnapData', logs: 'bzNSnapLogs' };

let skipReason: string | undefined = isRoot() ? undefined : 'needs root (users, loop mounts)';
let root: string;
let mnt: string;
let img: string;
let smtp: SmtpSink;
/** the subvolume holding the app (data and logs) */
let vol: string;
let s: SourceSetup;

async function sh(cmd: string): Promise<{ code: number | null; out: string }> {
  const r = await runProcess(['/bin/sh', '-c', cmd], { timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

before(async () => {
  if (skipReason) return;
  root = await mkdtemp(join(tmpdir(), 'baton-snapshot-'));
  await chmod(root, 0o755);
  if ((await sh('command -v mkfs.btrfs')).code !== 0) {
    skipReason = 'mkfs.btrfs is missing (setup.sh --test installs btrfs-progs)';
    if (process.env.CI === 'true') throw new Error(skipReason);
    return;
  }
  img = join(root, 'btrfs.img');
  mnt = join(root, 'mnt');
  await mkdir(mnt);
  for (const c of [`truncate -s 600M ${img}`, `mkfs.btrfs -q ${img}`, `mount -o loop ${img} ${mnt}`]) {
    const r = await sh(c);
    if (r.code !== 0) {
      skipReason = `no btrfs loop mount here (${c}: ${r.out})`;
      if (process.env.CI === 'true') throw new Error(skipReason);
      return;
    }
  }
  await chmod(mnt, 0o755);
  vol = join(mnt, 'vol');
  assert.equal((await sh(`btrfs subvolume create ${vol}`)).code, 0);
  await chmod(vol, 0o755);
  smtp = await startSmtp();
  await ensureUser(USERS.data);
  await ensureUser(USERS.logs);
  // the app in the subvolume; handovers, store and stateDir on the filesystem's top level
  s = await makeSourceSetup(vol, {
    name: 'shop',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    storageRoot: join(mnt, 'storage'),
    mailUrl: smtp.url,
  });
  await setCollect(s, 'collect: snapshot');
});

after(async () => {
  if (!root) return;
  s?.app.kill();
  await smtp?.stop();
  if (mnt) {
    let r = await sh(`umount ${mnt}`);
    if (r.code !== 0) r = await sh(`umount -l ${mnt}`);
    if (r.code !== 0) process.stderr.write(`snapshot e2e: could not unmount ${mnt}: ${r.out}\n`);
    const left = await sh(`losetup -j ${img}`);
    for (const dev of left.out
      .split('\n')
      .map((l) => l.split(':')[0])
      .filter(Boolean))
      await sh(`losetup -d ${dev}`);
  }
  await rm(root, { recursive: true, force: true });
});

function skipped(t: { skip: (m: string) => void; name: string }): boolean {
  if (skipReason === undefined) return false;
  process.stderr.write(`SKIP ${t.name}: ${skipReason}\n`);
  t.skip(skipReason);
  return true;
}

/** Puts `extra` (e.g. `collect: snapshot`) into the data stream's line of a source.yaml by makeSourceSetup. */
async function setCollect(x: SourceSetup, extra: string): Promise<void> {
  const yaml = await readFile(x.config, 'utf8');
  const next = yaml.replace(
    /(\n {2}data: \{ paths: [^\n]*?generations: 2)(, collect: .*)? \}\n/,
    `$1, ${extra} }\n`,
  );
  assert.notEqual(next, yaml, 'the data stream line was rewritten');
  await writeFile(x.config, next);
}

const backup = async (config: string, env: NodeJS.ProcessEnv = {}) => {
  const r = await runBaton(['source', 'backup', '--config', config], { env });
  await sleep(1100); // the next generation gets a new second
  return r;
};

/** btrfs subvolumes (paths below the mount) whose path lies under `under`. */
async function subvolumesUnder(under: string): Promise<string[]> {
  const r = await sh(`btrfs subvolume list -o ${mnt}`);
  assert.equal(r.code, 0, r.out);
  const rel = under.slice(mnt.length + 1);
  return r.out
    .split('\n')
    .map((l) => l.slice(l.indexOf(' path ') + 6))
    .filter((p) => p === rel || p.startsWith(`${rel}/`));
}

async function noSnapshotLeft(x: SourceSetup): Promise<void> {
  assert.deepEqual(await subvolumesUnder(x.state), [], 'no btrfs snapshot left in the stateDir');
  assert.ok(!existsSync(join(x.state, 'snapshot')), 'the snapshot dir is gone');
  assert.ok(!existsSync(join(x.state, 'snapshots.json')), 'the snapshot record is gone');
}

const lastStop = async (x: SourceSetup): Promise<number> => {
  const all = [
    ...(await readFile(join(x.app.logDir, 'app.log'), 'utf8')).matchAll(/ stopped after (\d+) ticks/g),
  ];
  return Number(all.at(-1)?.[1] ?? -1);
};

async function sha256sumCheck(gen: string): Promise<void> {
  const r = await sh(`cd ${join(gen, 'tree')} && sha256sum --quiet -c ../SHA256SUMS`);
  assert.equal(r.code, 0, `sha256sum -c in ${gen}: ${r.out}`);
}

const newest = async (x: SourceSetup) =>
  join(x.handoverData, (await generationIds(x.handoverData)).at(-1) ?? '');

test('collect: snapshot backs up what the app left when it stopped, though it runs again while the mirror is refreshed; no snapshot left', async (t) => {
  if (skipped(t)) return;
  const r = await backup(s.config);
  assert.equal(r.code, 0, show(r));
  assert.ok(s.app.isRunning(), 'the app runs again');
  assert.match(r.stderr, /snapshot of .* taken/);
  assert.match(r.stderr, /refreshing the data mirror from the snapshot/);
  const gen = await newest(s);
  await sha256sumCheck(gen);
  // the app writes counter.txt every 20 ms once it runs again: the generation holds its value at the stop
  const counter = await readFile(join(gen, 'tree', s.app.dataDir.slice(1), 'counter.txt'), 'utf8');
  assert.equal(Number(counter.trim()), await lastStop(s), 'the counter as the app left it when stopped');
  await noSnapshotLeft(s);
  const meta = JSON.parse(await readFile(join(gen, 'meta.json'), 'utf8')) as { downtimeMs: number };
  assert.ok(meta.downtimeMs > 0);
  // the run cleaned up after itself: the next one finds no work dir of it to remove
  const next = await backup(s.config);
  assert.equal(next.code, 0, show(next));
  assert.doesNotMatch(next.stderr, /work dir\(s\) of an interrupted run/);
  await noSnapshotLeft(s);
});

test('a generation built from a snapshot is byte-identical to one built by rsync from the same data', async (t) => {
  if (skipped(t)) return;
  // the app stays down, so both runs see the same data; the rsync twin has its own state and handovers
  assert.equal((await sh(s.app.stopCmd)).code, 0);
  const twin = join(mnt, 'twin');
  const yaml = (await readFile(s.config, 'utf8'))
    .replaceAll(join(mnt, 'storage'), twin)
    .replace(/stop: .*\n/, 'stop: "true"\n')
    .replace(/start: .*\n/, 'start: "true"\n')
    .replace(/ {2}healthCheck: .*\n/, '');
  for (const d of [twin, join(mnt, 'frozen')]) await mkdir(join(d, 'handover'), { recursive: true });
  const snapCfg = join(root, 'frozen-snap.yaml');
  const rsyncCfg = join(root, 'frozen-rsync.yaml');
  await writeFile(snapCfg, yaml.replaceAll(twin, join(mnt, 'frozen')));
  await writeFile(rsyncCfg, yaml.replace(', collect: snapshot', ', collect: rsync, prepass: false'));
  try {
    let r = await backup(snapCfg);
    assert.equal(r.code, 0, show(r));
    r = await backup(rsyncCfg);
    assert.equal(r.code, 0, show(r));
    const a = join(mnt, 'frozen', 'handover', 'data');
    const b = join(twin, 'handover', 'data');
    const [ga] = await generationIds(a);
    const [gb] = await generationIds(b);
    assert.ok(ga && gb);
    assert.equal(
      await readFile(join(a, ga, 'SHA256SUMS'), 'utf8'),
      await readFile(join(b, gb, 'SHA256SUMS'), 'utf8'),
    );
    // every entry alike (modes, owners, mtimes to the nanosecond, sizes, hashes), the dirs above the
    // subvolume included; only /tmp's own mtime may move between the runs (other processes use it)
    const tmpMtime = (m: string) => m.replace(/^(d \S+ \S+ \S+ \S+ \S+ )\S+( \S+ - tmp)$/m, '$1*$2');
    assert.equal(
      tmpMtime(await readFile(join(a, ga, 'manifest'), 'utf8')),
      tmpMtime(await readFile(join(b, gb, 'manifest'), 'utf8')),
      'the manifests of both generations',
    );
    const diff = await sh(`diff -r --no-dereference ${join(a, ga, 'tree')} ${join(b, gb, 'tree')}`);
    assert.equal(diff.code, 0, diff.out);
  } finally {
    assert.equal((await sh(s.app.startCmd)).code, 0);
  }
});

test('SIGKILL between the snapshot and the start: `source recover` starts the app and removes the snapshot; so does the next run', async (t) => {
  if (skipped(t)) return;
  let r = await backup(s.config, { BATON_CRASH_AT: 'snapshot-taken' });
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  assert.ok(!s.app.isRunning(), 'the killed run left the app stopped');
  assert.equal((await subvolumesUnder(s.state)).length, 1, 'the snapshot of the killed run is there');
  assert.ok(existsSync(join(s.state, 'snapshots.json')), 'and recorded');
  r = await runBaton(['source', 'recover', '--config', s.config]);
  assert.equal(r.code, 0, show(r));
  assert.ok(s.app.isRunning(), 'recover started the app');
  await noSnapshotLeft(s);

  r = await backup(s.config, { BATON_CRASH_AT: 'snapshot-taken' });
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  assert.equal((await subvolumesUnder(s.state)).length, 1);
  const before = await generationIds(s.handoverData);
  r = await backup(s.config);
  assert.equal(r.code, 0, show(r));
  assert.ok(s.app.isRunning());
  await noSnapshotLeft(s);
  assert.equal((await generationIds(s.handoverData)).length, before.length + 1);
  await sha256sumCheck(await newest(s));
});

test("SIGKILL while the stop command runs: the helper, told the stop's pid, makes no snapshot when it ends; recover ends the helper, starts the app and clears the record", async (t) => {
  if (skipped(t)) return;
  // the stop command kills baton, then stops the app a second later: the helper, waiting for the
  // stop's end to take the snapshot, sees baton gone first and must make nothing
  const killer = join(root, 'kill-during-stop.yaml');
  const yaml = await readFile(s.config, 'utf8');
  await writeFile(
    killer,
    yaml.replace(
      /stop: (".*")\n/,
      (_l, cmd: string) =>
        `stop: ${JSON.stringify(`kill -KILL $PPID; sleep 1\n${JSON.parse(cmd) as string}`)}\n`,
    ),
  );
  const r = await backup(killer);
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  await sleep(1500);
  assert.ok(!s.app.isRunning(), 'the stop command stopped the app after baton died');
  // the intent was recorded before the stop; the helper (its stdin closed with baton) made nothing
  assert.ok(existsSync(join(s.state, 'snapshots.json')), 'the snapshot intent is recorded');
  assert.deepEqual(await subvolumesUnder(s.state), [], 'no snapshot was made after baton died');
  const rec = await runBaton(['source', 'recover', '--config', s.config]);
  assert.equal(rec.code, 0, show(rec));
  assert.ok(s.app.isRunning(), 'recover started the app');
  await noSnapshotLeft(s);
  const left = await sh(`ps -eo args | grep -c '[B]TRFS_IOC\\|[S]NAP_CREATE_V2' || true`);
  assert.equal(left.out.trim(), '0', 'no snapshot helper is left running');
});

test("SIGKILL right after the stop: the snapshot the helper made at the stop's end is removed by recover", async (t) => {
  if (skipped(t)) return;
  const r = await backup(s.config, { BATON_CRASH_AT: 'app-stopped' });
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  assert.ok(!s.app.isRunning(), 'the killed run left the app stopped');
  assert.ok(existsSync(join(s.state, 'snapshots.json')), 'the snapshot intent is recorded');
  const rec = await runBaton(['source', 'recover', '--config', s.config]);
  assert.equal(rec.code, 0, show(rec));
  assert.ok(s.app.isRunning(), 'recover started the app');
  await noSnapshotLeft(s);
});

test('a snapshot that cannot be created: the app is started again, the run fails with a record and an alert mail, nothing left', async (t) => {
  if (skipped(t)) return;
  // the stop command puts a file where the snapshot goes: btrfs refuses to create it there
  const target = join(s.state, 'snapshot', 'data', '0', vol.slice(1));
  const bad = join(root, 'bad-target.yaml');
  const yaml = await readFile(s.config, 'utf8');
  await writeFile(
    bad,
    yaml.replace(
      /stop: (".*")\n/,
      (_l, cmd: string) =>
        `stop: ${JSON.stringify(`${JSON.parse(cmd) as string}\nmkdir -p ${dirname(target)} && echo x > ${target}`)}\n`,
    ),
  );
  const mails = smtp.messages.length;
  const before = await generationIds(s.handoverData);
  const r = await backup(bad);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /btrfs subvolume snapshot -r .* failed/);
  assert.ok(s.app.isRunning(), 'the app was started again');
  assert.ok(!existsSync(join(s.state, 'app-stopped.json')));
  assert.deepEqual(await generationIds(s.handoverData), before, 'nothing published');
  assert.deepEqual(await workDirs(s.handoverData), []);
  await noSnapshotLeft(s);
  const got = await smtp.waitFor(mails + 1);
  assert.match(got.at(-1)!.subject, /source backup FAILED \(collect\)/);
  assert.match(got.at(-1)!.text, /btrfs subvolume snapshot/);
  assert.match(got.at(-1)!.text, /The app server was started again/);
  const lastRun = JSON.parse(await readFile(join(s.state, 'last-run.json'), 'utf8')) as { ok: boolean };
  assert.equal(lastRun.ok, false);
});

test('a full filesystem while the app is down: the run fails, the app runs, no snapshot is left; with room again the next run completes', async (t) => {
  if (skipped(t)) return;
  const filler = join(mnt, 'filler');
  const full = join(root, 'full.yaml');
  const yaml = await readFile(s.config, 'utf8');
  // the stop command fills the filesystem (after the preflight found room)
  await writeFile(
    full,
    yaml.replace(
      /stop: (".*")\n/,
      (_l, cmd: string) =>
        `stop: ${JSON.stringify(`${JSON.parse(cmd) as string}\ndd if=/dev/zero of=${filler} bs=1M 2>/dev/null; sync; truncate -s -6M ${filler}; sync; true`)}\n`,
    ),
  );
  // a larger data file, so the mirror refresh needs room the full filesystem does not have
  await writeFile(join(s.app.dataDir, 'big.bin'), Buffer.alloc(40 * 1024 * 1024, 7));
  const mails = smtp.messages.length;
  const before = await generationIds(s.handoverData);
  try {
    const r = await backup(full);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /disk full/);
    // baton started it again and saw it healthy (on a full disk the app itself may fail later)
    assert.match(r.stderr, /app is healthy[^]*refreshing the data mirror from the snapshot/);
    assert.ok(!existsSync(join(s.state, 'app-stopped.json')));
    assert.deepEqual(await generationIds(s.handoverData), before, 'nothing published');
    await noSnapshotLeft(s);
    await smtp.waitFor(mails + 1);
  } finally {
    await rm(filler, { force: true });
    await rm(join(s.app.dataDir, 'big.bin'), { force: true });
    await sh(`sync; btrfs filesystem sync ${mnt}`);
    s.app.kill();
    assert.equal((await sh(s.app.startCmd)).code, 0);
  }
  const r = await backup(s.config);
  assert.equal(r.code, 0, show(r));
  await noSnapshotLeft(s);
  await sha256sumCheck(await newest(s));
});

test('collect: snapshot is refused before the app stops: a path not on btrfs, a stateDir on another filesystem, a nested subvolume', async (t) => {
  if (skipped(t)) return;
  const ext4 = await makeSourceSetup(root, { name: 'plain', dataUser: USERS.data, logsUser: USERS.logs });
  const cross = await makeSourceSetup(vol, {
    name: 'cross',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    storageRoot: join(root, 'cross-storage'),
  });
  const nested = await makeSourceSetup(vol, {
    name: 'nested',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    storageRoot: join(mnt, 'nested-storage'),
  });
  assert.equal((await sh(`btrfs subvolume create ${join(nested.app.dataDir, 'db')}`)).code, 0);
  try {
    for (const [x, why] of [
      [ext4, /data: collect: snapshot refused: .* is not on btrfs/],
      [cross, /data: collect: snapshot refused: the stateDir .* is not on btrfs/],
      [nested, /data: collect: snapshot refused: .* holds another btrfs subvolume, .*\/db/],
    ] as const) {
      await setCollect(x, 'collect: snapshot');
      const pid = await readFile(x.app.pidFile, 'utf8');
      const r = await backup(x.config);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, why);
      assert.equal(await readFile(x.app.pidFile, 'utf8'), pid, 'the app was never stopped');
      assert.deepEqual(await generationIds(x.handoverData), []);
    }
  } finally {
    ext4.app.kill();
    cross.app.kill();
    nested.app.kill();
    await sh(`btrfs subvolume delete ${join(nested.app.dataDir, 'db')}`);
  }
});

test('collect: command with btrfs commands in the hooks: created while the app is down, removed after; a killed run is repaired by recover; a hung create times out', async (t) => {
  if (skipped(t)) return;
  const view = join(mnt, 'hookview');
  const target = join(view, vol.slice(1));
  const hooks = (create: string) =>
    `collect: command, snapshot: { create: ${JSON.stringify(create)}, path: ${view}, remove: ${JSON.stringify(`[ ! -d ${target} ] || btrfs subvolume delete ${target}`)}, createTimeout: 2s }`;
  const real = `mkdir -p ${dirname(target)} && btrfs subvolume snapshot -r ${vol} ${target}`;
  await setCollect(s, hooks(real));
  try {
    let r = await backup(s.config);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /snapshot created/);
    const gen = await newest(s);
    await sha256sumCheck(gen);
    const counter = await readFile(join(gen, 'tree', s.app.dataDir.slice(1), 'counter.txt'), 'utf8');
    assert.equal(Number(counter.trim()), await lastStop(s), 'the counter as the app left it when stopped');
    assert.deepEqual(await subvolumesUnder(view), [], 'snapshot.remove ran');
    assert.ok(!existsSync(join(s.state, 'snapshots.json')));

    r = await backup(s.config, { BATON_CRASH_AT: 'snapshot-taken' });
    assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
    assert.equal((await subvolumesUnder(view)).length, 1, 'the hook snapshot of the killed run is there');
    r = await runBaton(['source', 'recover', '--config', s.config]);
    assert.equal(r.code, 0, show(r));
    assert.ok(s.app.isRunning());
    assert.deepEqual(await subvolumesUnder(view), [], 'recover ran snapshot.remove');
    assert.ok(!existsSync(join(s.state, 'snapshots.json')));

    await setCollect(s, hooks(`sleep 30`));
    const started = Date.now();
    r = await backup(s.config);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /snapshot\.create `sleep 30` failed/);
    assert.ok(Date.now() - started < 25_000, 'createTimeout bounds the hook');
    assert.ok(s.app.isRunning(), 'the app was started again');
  } finally {
    await setCollect(s, 'collect: snapshot');
  }
});
