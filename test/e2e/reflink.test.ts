import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, open, readFile, readdir, stat, statfs, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { gateLine, startE2e, writeSinkConfig, type E2e } from '../helpers/e2e.js';
import { type Sshd } from '../helpers/sshd.js';
import { isRoot, writeAuthorizedKeys, type KeyPair } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Issue #6: `collect: reflink` on the source and `storeMode: reflink` in the sink store, on real XFS
// images (mkfs.xfs -m reflink=1) mounted with -o loop, driven through the built CLI, a real sshd
// and the gate. ext4 (the temp dir) and tmpfs are the filesystems that cannot clone.

const USERS = { data: 'batonRflData', logs: 'batonRflLogs' };
const MIB = 1024 * 1024;
const DB_BYTES = 64 * MIB;
const PAGE = 4096;

let skipReason: string | undefined = isRoot() ? undefined : 'needs root (users, sshd, loop mounts)';
let e: E2e | undefined;
let root: string;
const mounts: string[] = [];
let srcFs: string;
let sinkFs: string;
let sshd: Sshd;
let src: SourceSetup;
let dataKey: KeyPair;
let logKey: KeyPair;

async function sh(cmd: string): Promise<{ code: number | null; out: string }> {
  const r = await runProcess(['/bin/sh', '-c', cmd], { timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/** A fresh XFS filesystem with reflink on a loop device, mounted on `<root>/<name>`; undefined + reason if impossible. */
async function mountXfs(name: string, sizeMiB: number): Promise<string> {
  const img = join(root, `${name}.img`);
  const mnt = join(root, name);
  await mkdir(mnt, { recursive: true });
  const steps = [
    `truncate -s ${sizeMiB}M ${img}`,
    `mkfs.xfs -q -m reflink=1 ${img}`,
    `mount -o loop ${img} ${mnt}`,
  ];
  for (const c of steps) {
    const r = await sh(c);
    if (r.code !== 0) throw new SkipError(`${c}: ${r.out}`);
  }
  mounts.push(mnt);
  await chmod(mnt, 0o755);
  return mnt;
}

class SkipError extends Error {}

before(async () => {
  if (skipReason) return;
  const h = await startE2e({ prefix: 'baton-reflink-' });
  e = h;
  root = h.root;
  h.onStop(unmountAll);
  h.onStop(() => src?.app.kill());
  if ((await sh('command -v mkfs.xfs')).code !== 0) {
    const apt = await sh('apt-get install -y xfsprogs');
    if (apt.code !== 0) {
      skipReason = `mkfs.xfs is missing and apt-get install xfsprogs failed: ${apt.out.split('\n').at(-1)}`;
      return;
    }
  }
  try {
    srcFs = await mountXfs('srcfs', 700);
    sinkFs = await mountXfs('sinkfs', 700);
  } catch (e) {
    if (!(e instanceof SkipError)) throw e;
    skipReason = `no XFS loop mount here (${e.message})`;
    return;
  }
  const dataUser = await h.addUser(USERS.data, 'data');
  const logUser = await h.addUser(USERS.logs, 'logs');
  dataKey = await h.addKey('data');
  logKey = await h.addKey('logs');
  sshd = await h.startSshd();
  // the app, its data, the handovers, the source store and the stateDir: all on the source XFS
  src = await makeSourceSetup(srcFs, { name: 'shop', dataUser: USERS.data, logsUser: USERS.logs });
  await useCollect(src, 'reflink', '*.tmp');
  await writeAuthorizedKeys(dataUser, [gateLine('data', src.config, dataKey)]);
  await writeAuthorizedKeys(logUser, [gateLine('logs', src.config, logKey)]);
  // a "database": one large file whose pages are rewritten in place between backups
  await writeFile(join(src.app.dataDir, 'db.bin'), randomBytes(DB_BYTES));
  await writeFile(join(src.app.dataDir, 'scratch.tmp'), 'excluded\n');
});

if (!isRoot()) process.stderr.write(`SKIP reflink e2e: ${skipReason ?? ''}\n`);

/** Unmounts every image (their loop devices are detached with them). */
async function unmountAll(): Promise<void> {
  // always: unmount every image (their loop devices are detached with them), then the temp dir
  for (const m of mounts.reverse()) {
    let r = await sh(`umount ${m}`);
    if (r.code !== 0) r = await sh(`umount -l ${m}`);
    if (r.code !== 0) process.stderr.write(`reflink e2e: could not unmount ${m}: ${r.out}\n`);
  }
  const left = await sh(`losetup -j ${join(root, 'srcfs.img')}; losetup -j ${join(root, 'sinkfs.img')}`);
  for (const dev of left.out
    .split('\n')
    .map((l) => l.split(':')[0])
    .filter(Boolean))
    await sh(`losetup -d ${dev}`);
}

after(async () => {
  await e?.stop();
});

/** Sets `collect:` (and the excludes) of the data stream in a source.yaml written by makeSourceSetup. */
async function useCollect(s: SourceSetup, mode: string, exclude?: string): Promise<void> {
  const yaml = await readFile(s.config, 'utf8');
  const next = yaml.replace(
    /(\n {2}data: \{ paths: [^\n]*?generations: 2)(, collect: \w+)?(, exclude: \[[^\]]*\])? \}/,
    `$1, collect: ${mode}${exclude ? `, exclude: ["${exclude}"]` : ''} }`,
  );
  assert.notEqual(next, yaml, 'the data stream line was rewritten');
  await writeFile(s.config, next);
}

function skipped(t: { skip: (m: string) => void; name: string }): boolean {
  if (skipReason === undefined) return false;
  process.stderr.write(`SKIP ${t.name}: ${skipReason}\n`);
  t.skip(skipReason);
  return true;
}

async function sinkConfig(name: string, store: string, storeMode: string): Promise<string> {
  // a sink store is made once, marker included, as `baton install sink` makes it
  await makeSinkStore(store);
  return writeSinkConfig(join(root, `sink-${name}.yaml`), {
    store,
    stateDir: join(root, `sink-state-${name}`),
    sshd,
    storeMode,
    sources: [
      {
        name: 'shop',
        streams: {
          data: { user: USERS.data, identity: dataKey.privateKey, generations: 3 },
          logs: { user: USERS.logs, identity: logKey.privateKey, generations: 3 },
        },
      },
    ],
  });
}

const backup = async (s: SourceSetup, env: NodeJS.ProcessEnv = {}) => {
  const r = await runBaton(['source', 'backup', '--config', s.config], { env });
  await sleep(1100); // the next generation gets a new second
  return r;
};
const pull = (file: string, stream: 'data' | 'logs', env: NodeJS.ProcessEnv = {}) =>
  runBaton(['sink', 'pull', stream, '--config', file], { env, timeoutMs: 300_000 });

/** `sha256sum -c` of a generation's SHA256SUMS inside its tree: coreutils agrees with every file. */
async function sha256sumCheck(gen: string): Promise<void> {
  const r = await sh(`cd ${join(gen, 'tree')} && sha256sum --quiet -c ../SHA256SUMS`);
  assert.equal(r.code, 0, `sha256sum -c in ${gen}: ${r.out}`);
}

/** Rewrites `pages` 4 KiB pages spread over the database file in place (same size), as a database does. */
async function touchPages(file: string, pages: number): Promise<number> {
  const fh = await open(file, 'r+');
  try {
    const stride = Math.floor(DB_BYTES / PAGE / pages);
    for (let i = 0; i < pages; i++) await fh.write(randomBytes(PAGE), 0, PAGE, (i * stride + 7) * PAGE);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return pages * PAGE;
}

/**
 * Used bytes of the filesystem holding `dir`, once written back and without XFS's speculative
 * copy-on-write preallocations (up to 128 KiB around each rewritten block, which XFS frees by
 * itself within 30 minutes): what the data takes for good.
 */
const usedBytes = async (dir: string): Promise<number> => {
  await sh(`sync -f ${dir}`);
  await sh(`xfs_spaceman -c 'prealloc -s -m 0' ${dir} 2>/dev/null`);
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
};

const appStops = async (s: SourceSetup): Promise<number> =>
  ((await readFile(join(s.app.logDir, 'app.log'), 'utf8')).match(/ stopped after /g) ?? []).length;

test('collect: reflink backs up a clone taken while the app is down; excludes applied, no clone left behind', async (t) => {
  if (skipped(t)) return;
  const stopsBefore = await appStops(src);
  const r = await backup(src);
  assert.equal(r.code, 0, show(r));
  assert.ok(src.app.isRunning(), 'the app runs again');
  assert.equal(await appStops(src), stopsBefore + 1, 'the app was stopped once');
  const [id] = await generationIds(src.handoverData);
  assert.ok(id, 'a data generation in the handover');
  const gen = join(src.handoverData, id);
  await sha256sumCheck(gen);
  const sums = await readFile(join(gen, 'SHA256SUMS'), 'utf8');
  assert.match(sums, /db\.bin\n/);
  assert.match(sums, /static\/readme\.txt\n/);
  assert.doesNotMatch(sums, /scratch\.tmp/, 'the *.tmp exclude applies to the clone');
  const meta = JSON.parse(await readFile(join(gen, 'meta.json'), 'utf8')) as { downtimeMs: number };
  assert.ok(meta.downtimeMs > 0, 'the downtime is recorded in meta.json');
  const lastRun = JSON.parse(await readFile(join(src.state, 'last-run.json'), 'utf8')) as {
    downtimeMs: number;
  };
  assert.equal(lastRun.downtimeMs, meta.downtimeMs);
  assert.ok(!existsSync(join(src.state, 'reflink')), 'the staging clone is gone');
  // the kept mirror is the (filtered) clone: an rsync collect could refresh it from here
  assert.ok(existsSync(join(src.state, 'mirror', 'data', src.app.dataDir.slice(1), 'db.bin')));
  assert.ok(!existsSync(join(src.state, 'mirror', 'data', src.app.dataDir.slice(1), 'scratch.tmp')));
  assert.match(r.stderr, /cloned/);
});

test('storeMode: reflink pulls through the gate; a few changed pages of a large file cost about those pages', async (t) => {
  if (skipped(t)) return;
  const store = join(sinkFs, 'store-reflink');
  const file = await sinkConfig('reflink', store, 'reflink');
  let r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  const streamDir = join(store, 'shop', 'data');
  const [first] = await generationIds(streamDir);
  assert.ok(first);
  await sha256sumCheck(join(streamDir, first));

  const changed = await touchPages(join(src.app.dataDir, 'db.bin'), 16);
  r = await backup(src);
  assert.equal(r.code, 0, show(r));
  const before = await usedBytes(sinkFs);
  r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  const grew = (await usedBytes(sinkFs)) - before;
  const ids = await generationIds(streamDir);
  assert.equal(ids.length, 2, ids.join(' '));
  const second = join(streamDir, ids[1] ?? '');
  await sha256sumCheck(second);
  // its own inode (a clone, not a hard link), yet only the changed blocks took new space
  const [a, b] = await Promise.all([
    stat(join(streamDir, first, 'tree', src.app.dataDir.slice(1), 'db.bin')),
    stat(join(second, 'tree', src.app.dataDir.slice(1), 'db.bin')),
  ]);
  assert.notEqual(a.ino, b.ino);
  assert.equal(b.nlink, 1);
  process.stderr.write(
    `reflink store: ${changed} bytes changed in a ${DB_BYTES}-byte file -> the sink store grew by ${grew} bytes (${((grew / DB_BYTES) * 100).toFixed(2)} % of the file)\n`,
  );
  // 16 pages, each within one or two of rsync's ~8 KiB delta blocks, plus the new tree's metadata
  assert.ok(grew < DB_BYTES / 64, `a generation with ${changed} changed bytes took ${grew} bytes`);
  assert.match(r.stderr, /cloned the previous generation's tree/);
  assert.ok(!existsSync(join(streamDir, '.incoming', ids[1] ?? '')), 'published, nothing left in .incoming');
});

test('a hard-link store on the same XFS pays the whole changed file (the figure reflink is compared with)', async (t) => {
  if (skipped(t)) return;
  const store = join(sinkFs, 'store-hardlink');
  const file = await sinkConfig('hardlink', store, 'hardlink');
  // catch up on what the reflink store already took (the source keeps nothing un-acked)
  await touchPages(join(src.app.dataDir, 'db.bin'), 1);
  let r = await backup(src);
  assert.equal(r.code, 0, show(r));
  r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  const changed = await touchPages(join(src.app.dataDir, 'db.bin'), 16);
  r = await backup(src);
  assert.equal(r.code, 0, show(r));
  const before = await usedBytes(sinkFs);
  r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  const grew = (await usedBytes(sinkFs)) - before;
  process.stderr.write(`hard-link store: ${changed} bytes changed -> the sink store grew by ${grew} bytes\n`);
  assert.ok(grew >= DB_BYTES, `hard links copy the whole changed file: grew ${grew}`);
});

test('a pull killed after the clone resumes into it and publishes a verified generation', async (t) => {
  if (skipped(t)) return;
  const store = join(sinkFs, 'store-reflink');
  const file = await sinkConfig('reflink', store, 'reflink');
  await touchPages(join(src.app.dataDir, 'db.bin'), 4);
  let r = await backup(src);
  assert.equal(r.code, 0, show(r));
  const streamDir = join(store, 'shop', 'data');
  const had = await generationIds(streamDir);
  r = await pull(file, 'data', { BATON_CRASH_AT: 'sink-cloned' });
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  const incoming = await readdir(join(streamDir, '.incoming'));
  assert.equal(incoming.length, 1, 'the cloned pull is left to resume');
  assert.deepEqual(await generationIds(streamDir), had, 'nothing published');
  r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  assert.match(r.stderr, /resuming into the clone/);
  const ids = await generationIds(streamDir);
  assert.equal(ids.length, Math.min(had.length + 1, 3));
  await sha256sumCheck(join(streamDir, ids.at(-1) ?? ''));
});

test('the clone is not trusted: a rotten file in the previous generation is caught by hashing, quarantined, not acked', async (t) => {
  if (skipped(t)) return;
  const store = join(sinkFs, 'store-reflink');
  const file = await sinkConfig('reflink', store, 'reflink');
  const streamDir = join(store, 'shop', 'data');
  const prev = join(
    streamDir,
    (await generationIds(streamDir)).at(-1) ?? '',
    'tree',
    src.app.dataDir.slice(1),
  );
  // same size and mtime (to the nanosecond), other bytes: rsync's quick check skips it, so the clone keeps the rot
  const readme = join(prev, 'static', 'readme.txt');
  const ref = join(root, 'readme.ref');
  const text = await readFile(readme, 'utf8');
  const rot = async (content: string) => {
    assert.equal((await sh(`touch -r ${readme} ${ref}`)).code, 0);
    await writeFile(readme, content);
    assert.equal((await sh(`touch -r ${ref} ${readme}`)).code, 0);
  };
  await rot(text.replace('never', 'NEVER'));
  await touchPages(join(src.app.dataDir, 'db.bin'), 2);
  let r = await backup(src);
  assert.equal(r.code, 0, show(r));
  const pending = await generationIds(src.handoverData);
  r = await pull(file, 'data');
  assert.equal(r.code, 1, show(r));
  assert.match(r.stdout + r.stderr, /failed verification \(quarantined/);
  assert.match(r.stdout + r.stderr, /hash: .*static\/readme\.txt/);
  assert.ok((await readdir(join(streamDir, '.quarantine'))).length >= 1);
  assert.deepEqual(await generationIds(src.handoverData), pending, 'nothing acked');
  // repaired, the next pull converges
  await rot(text);
  r = await pull(file, 'data');
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(await generationIds(src.handoverData), [], 'acked once verified');
});

test('storeMode: auto falls back to hard links on ext4; storeMode: reflink there fails with one clear line', async (t) => {
  if (skipped(t)) return;
  await touchPages(join(src.app.dataDir, 'db.bin'), 1);
  let r = await backup(src);
  assert.equal(r.code, 0, show(r));
  const pending = await generationIds(src.handoverData);
  const ext4 = join(root, 'ext4-store'); // the temp dir: ext4 here, it cannot clone
  r = await pull(await sinkConfig('strict', ext4, 'reflink'), 'data');
  assert.equal(r.code, 1, show(r));
  assert.match(
    r.stdout,
    /storeMode: reflink, but the sink store at .* cannot clone files .*use storeMode: auto or hardlink/,
  );
  assert.deepEqual(await generationIds(src.handoverData), pending, 'nothing acked');
  r = await pull(await sinkConfig('auto', ext4, 'auto'), 'data');
  assert.equal(r.code, 0, show(r));
  assert.match(r.stderr, /cannot clone files: hard links are used/);
  await sha256sumCheck(
    join(ext4, 'shop', 'data', (await generationIds(join(ext4, 'shop', 'data'))).at(-1) ?? ''),
  );
});

test('collect: reflink is refused before the app stops: stateDir on another filesystem, or a filesystem that cannot clone', async (t) => {
  if (skipped(t)) return;
  // data on XFS, stateDir on ext4
  const crossFs = await makeSourceSetup(srcFs, { name: 'cross', dataUser: USERS.data, logsUser: USERS.logs });
  // everything on ext4 (the temp dir)
  const ext4 = await makeSourceSetup(root, { name: 'plain', dataUser: USERS.data, logsUser: USERS.logs });
  try {
    const yaml = await readFile(crossFs.config, 'utf8');
    await writeFile(
      crossFs.config,
      yaml.replace(`stateDir: ${crossFs.state}`, `stateDir: ${join(root, 'cross-state')}`),
    );
    await useCollect(crossFs, 'reflink');
    await useCollect(ext4, 'reflink');
    for (const [s, why] of [
      [crossFs, /data: collect: reflink refused: .* and the stateDir .* are on different filesystems/],
      [
        ext4,
        /data: collect: reflink refused: the filesystem of .* cannot clone files \(cp --reflink=always failed/,
      ],
    ] as const) {
      const pid = await readFile(s.app.pidFile, 'utf8');
      const r = await backup(s);
      assert.equal(r.code, 1, show(r));
      const errLines = r.stderr.split('\n').filter((l) => /refused/.test(l));
      assert.equal(errLines.length >= 1, true, show(r));
      assert.match(r.stderr, why);
      assert.equal(await appStops(s), 0, 'the app was never stopped');
      assert.equal(await readFile(s.app.pidFile, 'utf8'), pid, 'same app process');
      assert.deepEqual(await generationIds(s.handoverData), []);
    }
  } finally {
    crossFs.app.kill();
    ext4.app.kill();
  }
});

test('a run killed while the clone waits (app down) leaves no staging: the next run restarts the app and removes it', async (t) => {
  if (skipped(t)) return;
  let r = await backup(src, { BATON_CRASH_AT: 'collected' });
  assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
  assert.ok(!src.app.isRunning(), 'the killed run left the app stopped');
  assert.ok(existsSync(join(src.state, 'reflink', 'data')), 'the clone of the killed run is there');
  r = await runBaton(['source', 'recover', '--config', src.config]);
  assert.equal(r.code, 0, show(r));
  assert.ok(src.app.isRunning(), 'recover started the app');
  assert.ok(!existsSync(join(src.state, 'reflink')), 'recover removed the clone');
  r = await backup(src);
  assert.equal(r.code, 0, show(r));
  await sha256sumCheck(join(src.handoverData, (await generationIds(src.handoverData)).at(-1) ?? ''));
});
