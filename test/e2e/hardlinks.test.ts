import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, link, mkdir, readFile, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess } from '../../src/adapters/run.js';
import { gateLine as gateLineFor, startE2e, writeSinkConfig, type E2e } from '../helpers/e2e.js';
import { type Sshd } from '../helpers/sshd.js';
import { needsRootOrSkipFile, writeAuthorizedKeys, type KeyPair } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { diffListings, treeListing } from '../helpers/listing.js';

// Issue 11: hard links inside the app data survive backup, pull, verify, publish and every kind of
// restore (listings with link counts and inode groups equal before and after), and a pull killed
// on a nearly full sink disk resumes. Real sshd, real users, the real gate, real rsync.
const NEEDS_ROOT = needsRootOrSkipFile('hardlinks', 'users, sshd, tmpfs and loop mounts');

const USERS = { data: 'bzFData', logs: 'bzFLogs' };
const MIB = 1024 * 1024;
let e: E2e | undefined;
let root: string;
let sshd: Sshd;
let src: SourceSetup;
let xsrc: SourceSetup | undefined;
let keys: Record<'data' | 'logs' | 'xdata' | 'xlogs', KeyPair>;
const mounts: string[] = [];
let xfsSkip: string | undefined;
let srcFs: string;
let sinkFs: string;

async function sh(cmd: string): Promise<{ code: number | null; out: string }> {
  const r = await runProcess(['/bin/sh', '-c', cmd], { timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/** A fresh XFS filesystem with reflink on a loop device (as test/e2e/reflink.test.ts makes them). */
async function mountXfs(name: string, sizeMiB: number): Promise<string | undefined> {
  const img = join(root, `${name}.img`);
  const mnt = join(root, name);
  await mkdir(mnt, { recursive: true });
  if ((await sh('command -v mkfs.xfs')).code !== 0) await sh('apt-get install -y xfsprogs');
  for (const c of [
    `truncate -s ${sizeMiB}M ${img}`,
    `mkfs.xfs -q -m reflink=1 ${img}`,
    `mount -o loop ${img} ${mnt}`,
  ]) {
    const r = await sh(c);
    if (r.code !== 0) {
      xfsSkip = `${c}: ${r.out}`;
      return undefined;
    }
  }
  mounts.push(mnt);
  await chmod(mnt, 0o755);
  return mnt;
}

const gateLine = (s: SourceSetup, stream: 'data' | 'logs', key: KeyPair) =>
  gateLineFor(stream, s.config, key);

before(async () => {
  if (NEEDS_ROOT) return;
  const h = await startE2e({
    prefix: 'baton-hardlinks-',
    users: USERS,
    keys: ['data', 'logs', 'xdata', 'xlogs'],
  });
  e = h;
  ({ root, sshd } = h);
  const dataUser = h.user('data');
  const logUser = h.user('logs');
  keys = { data: h.key('data'), logs: h.key('logs'), xdata: h.key('xdata'), xlogs: h.key('xlogs') };
  h.onStop(unmountAll);
  h.onStop(() => {
    src?.app.kill();
    xsrc?.app.kill();
  });
  src = await makeSourceSetup(root, { name: 'shop', dataUser: USERS.data, logsUser: USERS.logs });
  const sf = await mountXfs('srcfs', 320);
  const kf = sf ? await mountXfs('sinkfs', 320) : undefined;
  if (sf && kf) {
    srcFs = sf;
    sinkFs = kf;
    xsrc = await makeSourceSetup(srcFs, { name: 'shopx', dataUser: USERS.data, logsUser: USERS.logs });
    const yaml = await readFile(xsrc.config, 'utf8');
    const next = yaml.replace(/(\n {2}data: \{ paths: [^\n]*?generations: 2) \}/, '$1, collect: reflink }');
    assert.notEqual(next, yaml);
    await writeFile(xsrc.config, next);
  }
  await writeAuthorizedKeys(dataUser, [
    gateLine(src, 'data', keys.data),
    ...(xsrc ? [gateLine(xsrc, 'data', keys.xdata)] : []),
  ]);
  await writeAuthorizedKeys(logUser, [
    gateLine(src, 'logs', keys.logs),
    ...(xsrc ? [gateLine(xsrc, 'logs', keys.xlogs)] : []),
  ]);
});

/** Unmounts the XFS images and detaches their loop devices. */
async function unmountAll(): Promise<void> {
  for (const m of mounts.reverse()) {
    const r = await sh(`umount ${m}`);
    if (r.code !== 0) await sh(`umount -l ${m}`);
  }
  await sh(`for m in $(grep -o ' ${root}/[^ ]*' /proc/mounts); do umount $m; done`);
  for (const img of ['srcfs', 'sinkfs']) {
    const left = await sh(`losetup -j ${join(root, `${img}.img`)}`);
    for (const dev of left.out
      .split('\n')
      .map((l) => l.split(':')[0])
      .filter(Boolean))
      await sh(`losetup -d ${dev}`);
  }
}

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

async function sinkConfig(
  name: string,
  store: string,
  s: SourceSetup,
  dataKey: KeyPair,
  logKey: KeyPair,
  storeMode = 'hardlink',
): Promise<string> {
  await makeSinkStore(store);
  return writeSinkConfig(join(root, `sink-${name}.yaml`), {
    store,
    stateDir: join(root, `sink-state-${name}`),
    sshd,
    storeMode,
    sources: [
      {
        name: s === src ? 'shop' : 'shopx',
        streams: {
          data: { user: USERS.data, identity: dataKey.privateKey, generations: 3 },
          logs: { user: USERS.logs, identity: logKey.privateKey, generations: 3 },
        },
      },
    ],
  });
}

const backup = async (s: SourceSetup) => {
  const r = await runBaton(['source', 'backup', '--config', s.config], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, show(r));
  await sleep(1100); // the next generation gets a new second
};
const pull = (file: string, stream: 'data' | 'logs', env: NodeJS.ProcessEnv = {}) =>
  runBaton(['sink', 'pull', stream, '--config', file], { env, timeoutMs: 300_000 });

/**
 * App data with hard links, as Maildirs, git object stores and deduplicated uploads have them: a
 * group of three names in three directories, a pair, an owned and setgid pair, a plain file and a
 * symlink to a linked name. The app never writes here (its counter is beside it).
 */
async function makeLinkedData(dataDir: string): Promise<string> {
  const d = join(dataDir, 'links');
  await rm(d, { recursive: true, force: true });
  for (const sub of ['mail/cur', 'mail/new', 'repo1/objects/ab', 'repo2/objects/ab', 'uploads'])
    await mkdir(join(d, sub), { recursive: true });
  await writeFile(join(d, 'mail/cur/m1'), 'a message\n');
  await link(join(d, 'mail/cur/m1'), join(d, 'mail/new/m1'));
  await writeFile(join(d, 'repo1/objects/ab/cdef'), randomBytes(70_000));
  await chmod(join(d, 'repo1/objects/ab/cdef'), 0o444);
  await link(join(d, 'repo1/objects/ab/cdef'), join(d, 'repo2/objects/ab/cdef'));
  await link(join(d, 'repo1/objects/ab/cdef'), join(d, 'uploads/cdef'));
  await writeFile(join(d, 'uploads/a.bin'), 'same bytes\n');
  await link(join(d, 'uploads/a.bin'), join(d, 'uploads/b.bin'));
  // identical content, but not linked: must stay two inodes
  await writeFile(join(d, 'uploads/c.bin'), 'same bytes\n');
  await writeFile(join(d, 'owned'), 'owned by someone else\n');
  await chown(join(d, 'owned'), 4321, 4321);
  await chmod(join(d, 'owned'), 0o2750);
  await link(join(d, 'owned'), join(d, 'owned.link'));
  await symlink('uploads/a.bin', join(d, 'sym'));
  return d;
}

/** The one generation of `s` newest in the sink store. */
async function newestSinkGen(store: string, source: string): Promise<string> {
  const ids = await generationIds(join(store, source, 'data'));
  const id = ids.at(-1);
  assert.ok(id, 'a generation in the sink store');
  return join(store, source, 'data', id);
}

async function assertDiffEmpty(kind: string, before: string, afterDir: string): Promise<void> {
  const after = await treeListing(afterDir);
  const diff = await diffListings(root, kind, before, after);
  // shown in the test log: the evidence that the listings (with link counts and groups) are equal
  process.stderr.write(
    `listing diff after ${kind} (${before.split('\n').length - 1} entries): ${diff === '' ? '(empty)' : `\n${diff}`}\n`,
  );
  assert.equal(diff, '', `${kind}: the restored tree differs from the original`);
}

test(
  'hard links in the data: kept through backup, pull, verify and publish; restore --to, --path and source restore re-create them',
  { skip: NEEDS_ROOT },
  async () => {
    const dir = await makeLinkedData(src.app.dataDir);
    const listing = await treeListing(dir);
    assert.match(listing, /nlink=3 g[0-9]/, 'the original has a group of three');
    const store = join(root, 'store');
    const sink = await sinkConfig('hl', store, src, keys.data, keys.logs);
    await backup(src);
    let r = await pull(sink, 'data');
    assert.equal(r.code, 0, show(r));
    // a second generation: its tree is hard-linked to the first (the tree's own links, not the data's)
    await backup(src);
    r = await pull(sink, 'data');
    assert.equal(r.code, 0, show(r));
    const gen = await newestSinkGen(store, 'shop');
    const manifest = await readFile(join(gen, 'manifest'), 'utf8');
    assert.equal(manifest.split('\n')[0], '# baton-manifest 2');
    assert.match(manifest, /\/links\/mail\/new\/m1 =[^ ]*\/links\/mail\/cur\/m1\n/);
    const rel = src.app.dataDir.slice(1);
    const ino = async (p: string) => (await stat(join(gen, 'tree', rel, 'links', p))).ino;
    assert.equal(
      await ino('uploads/a.bin'),
      await ino('uploads/b.bin'),
      'a group is one inode in the sink store',
    );
    assert.equal(await ino('repo1/objects/ab/cdef'), await ino('uploads/cdef'));
    assert.notEqual(
      await ino('uploads/a.bin'),
      await ino('uploads/c.bin'),
      'equal content, not linked: two inodes',
    );
    const sums = await sh(`cd ${join(gen, 'tree')} && sha256sum --quiet -c ../SHA256SUMS`);
    assert.equal(sums.code, 0, sums.out);
    const v = await runBaton(['verify', '--deep', gen]);
    assert.equal(v.code, 0, show(v));

    // copy-out
    const out = join(root, 'out-copy');
    r = await runBaton(['restore', gen, '--to', out]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /4 hard-link group\(s\) re-created/);
    await assertDiffEmpty('restore --to', listing, join(out, rel, 'links'));

    // plain tools (docs/restore-runbook.md, section 4): rsync -a of the tree, then apply-manifest.py
    const runbook = await readFile(
      fileURLToPath(new URL('../../docs/restore-runbook.md', import.meta.url)),
      'utf8',
    );
    const script = /```python\n([\s\S]*?)```/.exec(runbook)?.[1];
    assert.ok(script, 'the runbook holds apply-manifest.py');
    await writeFile(join(root, 'apply-manifest.py'), script);
    const plain = join(root, 'out-plain');
    await mkdir(plain);
    const applied = await sh(
      `rsync -a ${gen}/tree/ ${plain}/ && python3 ${root}/apply-manifest.py ${gen} ${plain}`,
    );
    assert.equal(applied.code, 0, applied.out);
    await assertDiffEmpty('plain tools (rsync -a, apply-manifest.py)', listing, join(plain, rel, 'links'));

    // a --path that splits groups: what is inside is restored, linked together, and said so
    const part = join(root, 'out-part');
    r = await runBaton(['restore', gen, '--to', part, '--path', join(rel, 'links', 'repo2')]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /1 hard-link group\(s\) split by --path/);
    const obj = await stat(join(part, rel, 'links', 'repo2/objects/ab/cdef'));
    assert.equal(obj.nlink, 1, 'the only name inside --path');
    assert.equal(obj.size, 70_000);

    // in place, after the data changed: a name unlinked, a group broken, content written through a link
    await unlink(join(dir, 'uploads/b.bin'));
    await rm(join(dir, 'uploads/cdef'));
    await writeFile(join(dir, 'uploads/cdef'), 'another file now\n');
    await writeFile(join(dir, 'mail/new/m1'), 'changed through one name\n');
    const id = gen.split('/').at(-1) ?? '';
    r = await runBaton(['source', 'restore', id, '--yes', '--config', src.config], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, show(r));
    await assertDiffEmpty('source restore (in place)', listing, dir);
  },
);

test(
  'a pull killed on a nearly full sink disk resumes: the precheck counts what .incoming holds, after freeing what no pending generation needs',
  { skip: NEEDS_ROOT },
  async () => {
    const fs = join(root, 'tmpfs');
    await mkdir(fs, { recursive: true });
    const m = await runProcess(['mount', '-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', fs]);
    assert.equal(m.code, 0, m.stderr);
    const big1 = join(src.app.dataDir, 'big1.bin');
    const big2 = join(src.app.dataDir, 'big2.bin');
    await writeFile(big1, randomBytes(16 * MIB));
    await writeFile(big2, randomBytes(4 * MIB));
    try {
      const sink = await sinkConfig('full', fs, src, keys.data, keys.logs);
      await backup(src);
      const [id] = await generationIds(src.handoverData);
      assert.ok(id);
      // what a pull killed mid-transfer leaves: most of the tree (big1 complete), big2 and the manifest not yet
      const incoming = join(fs, 'shop', 'data', '.incoming');
      const inc = join(incoming, id);
      await mkdir(inc, { recursive: true });
      const cp = await runProcess([
        'rsync',
        '-a',
        '--exclude=big2.bin',
        '--exclude=/manifest',
        `${join(src.handoverData, id)}/`,
        `${inc}/`,
      ]);
      assert.equal(cp.code, 0, cp.stderr);
      // and a leftover of a generation no longer pending (acked by an earlier run, say)
      const stale = join(incoming, '2001-01-01T000000Z', 'tree');
      await mkdir(stale, { recursive: true });
      await writeFile(join(stale, 'junk'), randomBytes(12 * MIB));
      const r = await pull(sink, 'data');
      assert.equal(r.code, 0, show(r));
      assert.deepEqual(await generationIds(join(fs, 'shop', 'data')), [id], 'published');
      assert.deepEqual(await generationIds(src.handoverData), [], 'acked');
      assert.equal((await sh(`ls -A ${incoming}`)).out, '', 'nothing left in .incoming');
    } finally {
      await rm(big1, { force: true });
      await rm(big2, { force: true });
    }
  },
);

test(
  'collect: reflink and storeMode: reflink keep the data hard links too (XFS), also when a group changes between generations',
  { skip: NEEDS_ROOT },
  async (t) => {
    if (!xsrc) {
      t.skip(`no XFS loop mount here: ${xfsSkip ?? ''}`);
      return;
    }
    const s = xsrc;
    const dir = await makeLinkedData(s.app.dataDir);
    let listing = await treeListing(dir);
    const store = join(sinkFs, 'store');
    const sink = await sinkConfig('xfs', store, s, keys.xdata, keys.xlogs, 'reflink');
    await backup(s);
    let r = await pull(sink, 'data');
    assert.equal(r.code, 0, show(r));
    const rel = s.app.dataDir.slice(1);
    r = await runBaton(['restore', await newestSinkGen(store, 'shopx'), '--to', join(root, 'out-x1')]);
    assert.equal(r.code, 0, show(r));
    await assertDiffEmpty(
      'restore --to (collect: reflink, storeMode: reflink)',
      listing,
      join(root, 'out-x1', rel, 'links'),
    );

    // the next generation is pulled in place into a clone of this one: a group grows, one is broken
    await link(join(dir, 'uploads/a.bin'), join(dir, 'uploads/d.bin'));
    await rm(join(dir, 'owned.link'));
    await writeFile(join(dir, 'owned.link'), 'now its own file\n');
    listing = await treeListing(dir);
    await backup(s);
    r = await pull(sink, 'data');
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr + r.stdout, /in place into the clone|cloned/);
    const gen = await newestSinkGen(store, 'shopx');
    const v = await runBaton(['verify', '--deep', gen]);
    assert.equal(v.code, 0, show(v));
    r = await runBaton(['restore', gen, '--to', join(root, 'out-x2')]);
    assert.equal(r.code, 0, show(r));
    await assertDiffEmpty(
      'restore --to (reflink clone updated in place)',
      listing,
      join(root, 'out-x2', rel, 'links'),
    );
    // a pull killed right after the clone resumes into it: the data's own links inside the clone
    // are not links to a published generation
    await writeFile(join(s.app.dataDir, 'counter-extra.txt'), 'one more generation\n');
    await backup(s);
    r = await pull(sink, 'data', { BATON_CRASH_AT: 'sink-cloned' });
    assert.equal(r.signal ?? r.code, 'SIGKILL', show(r));
    r = await pull(sink, 'data');
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /resuming into the clone/);
    r = await runBaton(['restore', await newestSinkGen(store, 'shopx'), '--to', join(root, 'out-x3')]);
    assert.equal(r.code, 0, show(r));
    await assertDiffEmpty(
      'restore --to (resumed reflink clone)',
      listing,
      join(root, 'out-x3', rel, 'links'),
    );
  },
);
