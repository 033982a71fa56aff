import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFile,
  chmod,
  chown,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { sha256File, walkTree } from '../../src/adapters/fsx.js';
import { formatManifestLine, MANIFEST_HEADER, type ManifestEntry } from '../../src/core/manifest.js';
import { createFakeApp, type FakeApp } from '../helpers/fake-app.js';
import { ensureUser, type TestUser, needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';

// A real backup of a tree with every kind of tricky content, restored with the built CLI and
// compared with `find -printf` listings and sha256 of every file. Own users: batonRst*.
const NEEDS_ROOT = needsRootOrSkipFile('restore', 'creates users batonRstData/batonRstOwner, chown, mknod');

let root: string;
let outside: string;
let app: FakeApp;
let owner: TestUser;
let tricky: string;
let config: string;
let state: string;
let handover: string;
let genId: string;
let gen: string;
let trickyBefore: string[];
let hashesBefore: Map<string, string>;
let hasDevice = false;

const OLD = '@1000000000.123456789';
const rel = (abs: string) => abs.slice(1);

async function sh(script: string): Promise<void> {
  const r = await runProcess(['/bin/sh', '-c', script], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `${script}\n${r.stderr}`);
}

/** An id with no name in passwd (uid) or group (gid). */
async function unnamedId(db: 'passwd' | 'group', from: number): Promise<number> {
  for (let id = from; ; id++) {
    const r = await runProcess(['getent', db, String(id)], { timeoutMs: 10_000 });
    if (r.code !== 0) return id;
  }
}

/**
 * `find` listing of a tree, one record per entry, sorted: type, mode (incl. setuid/setgid/sticky),
 * user, group (names where they exist), mtime with nanoseconds, size (not for directories: their
 * size depends on the history of the directory, not its content), link target, path. No atime.
 */
function listing(dir: string): string[] {
  const r = spawnSync('find', ['.', '-printf', '%y\\001%m\\001%u\\001%g\\001%T@\\001%s\\001%l\\001%P\\000'], {
    cwd: dir,
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr.toString());
  const records: string[] = [];
  let start = 0;
  for (let i = 0; i < r.stdout.length; i++) {
    if (r.stdout[i] !== 0) continue;
    const f = r.stdout.subarray(start, i).toString('latin1').split('\x01');
    if (f[0] === 'd') f[5] = '-';
    records.push(f.join(' | '));
    start = i + 1;
  }
  return records.sort();
}

async function fileHashes(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for await (const e of walkTree(dir))
    if (e.st.isFile()) m.set(e.rel.toString('latin1'), await sha256File(e.abs));
  return m;
}

async function buildTricky(
  dir: string,
  ownerUser: TestUser,
  orphanUid: number,
  orphanGid: number,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'suid'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'suid'), 0o4755);
  await mkdir(join(dir, 'sgid-dir'));
  await writeFile(join(dir, 'sgid-dir', 'inner.txt'), 'inner\n');
  await chmod(join(dir, 'sgid-dir'), 0o2775);
  await mkdir(join(dir, 'sticky'));
  await writeFile(join(dir, 'sticky', 'f'), 'in a sticky dir\n');
  await chown(join(dir, 'sticky', 'f'), ownerUser.uid, ownerUser.gid);
  await chmod(join(dir, 'sticky'), 0o1777);
  await writeFile(join(dir, 'owned.txt'), 'owned by a named user\n', { mode: 0o640 });
  await chown(join(dir, 'owned.txt'), ownerUser.uid, ownerUser.gid);
  await writeFile(join(dir, 'orphan.txt'), 'owned by ids without names\n', { mode: 0o600 });
  await chown(join(dir, 'orphan.txt'), orphanUid, orphanGid);
  await mkdir(join(dir, 'orphan-dir'), { mode: 0o700 });
  await writeFile(join(dir, 'orphan-dir', 'x'), 'x\n');
  await chown(join(dir, 'orphan-dir'), orphanUid, orphanGid);
  await symlink('/etc/hostname', join(dir, 'abs-link'));
  await lchown(join(dir, 'abs-link'), ownerUser.uid, ownerUser.gid);
  await symlink('owned.txt', join(dir, 'rel-link'));
  await symlink('no/such/target', join(dir, 'dangling'));
  await mkdir(join(dir, 'empty'), { mode: 0o700 });
  await sh(`mkfifo -m 620 '${dir}/fifo' && chown ${ownerUser.uid}:${orphanGid} '${dir}/fifo'`);
  hasDevice =
    (await runProcess(['mknod', '-m', '640', join(dir, 'null-dev'), 'c', '1', '3'], { timeoutMs: 10_000 }))
      .code === 0;
  if (!hasDevice) process.stderr.write('note: mknod not permitted here: the device case is not covered\n');
  await writeFile(join(dir, 'new\nline'), 'a name with a newline\n');
  await writeFile(Buffer.from(`${dir}/\xe9\xff`, 'latin1'), 'a name that is not UTF-8\n');
  const oddDir = Buffer.from(`${dir}/\xfe dir`, 'latin1');
  await mkdir(oddDir);
  await writeFile(Buffer.concat([oddDir, Buffer.from('/x y')]), 'inside a non-UTF-8 dir\n');
  await writeFile(join(dir, 'big.bin'), randomBytes(3 * 1024 * 1024 + 17));
  await writeFile(join(dir, 'zero-mode'), 'no permissions\n', { mode: 0o000 });
  await chmod(join(dir, 'zero-mode'), 0o000);
  await mkdir(join(dir, 'ro-dir'));
  await writeFile(join(dir, 'ro-dir', 'kept'), 'in a read-only dir\n');
  await chmod(join(dir, 'ro-dir'), 0o555);
  await mkdir(join(dir, 'sub', 'deeper'), { recursive: true });
  await writeFile(join(dir, 'sub', 'deeper', 'file.txt'), 'deep\n');
  await writeFile(join(dir, 'sub', 'top.txt'), 'top\n');
  // old mtimes on a file, a symlink, directories, and the root of the tree (last: it changes with its content)
  await sh(
    `cd '${dir}' && touch -h -d ${OLD} owned.txt abs-link dangling empty ro-dir sub/deeper fifo && touch -d @1200000000.5 sub && touch -d ${OLD} .`,
  );
  await chmod(dir, 0o750);
}

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-rst-'));
  await chmod(root, 0o755);
  outside = await mkdtemp(join(tmpdir(), 'baton-rst-outside-'));
  const dataUser = await ensureUser('batonRstData');
  owner = await ensureUser('batonRstOwner');
  const orphanUid = await unnamedId('passwd', 4343);
  const orphanGid = await unnamedId('group', 4343);
  tricky = join(root, 'src', 'tricky');
  await buildTricky(tricky, owner, orphanUid, orphanGid);
  app = createFakeApp(join(root, 'app'));
  await sh(app.startCmd);
  state = join(root, 'state');
  handover = join(root, 'handover');
  config = join(root, 'source.yaml');
  await writeFile(
    config,
    `name: shop-rst
stateDir: ${state}
app:
  stop: ${JSON.stringify(app.stopCmd)}
  start: ${JSON.stringify(app.startCmd)}
  healthCheck: ${JSON.stringify(app.healthCmd)}
  stopTimeout: 30s
  startTimeout: 30s
streams:
  data:
    paths: [${app.dataDir}, ${tricky}]
    handover: ${handover}
    user: ${dataUser.name}
    store: ${join(root, 'store')}
    generations: 2
`,
  );
  const r = await runBaton(['source', 'backup', '--config', config]);
  assert.equal(r.code, 0, show(r));
  const ids = (await readdir(handover)).filter((n) => !n.startsWith('.'));
  assert.equal(ids.length, 1);
  genId = ids[0]!;
  gen = join(handover, genId);
  trickyBefore = listing(tricky);
  hashesBefore = await fileHashes(tricky);
});

after(async () => {
  if (NEEDS_ROOT) return;
  app.kill();
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

test(
  'restore recreates the tree faithfully: modes, owners, mtimes, links, FIFOs, devices, odd names',
  { skip: NEEDS_ROOT },
  async () => {
    const out = join(root, 'out-full');
    const r = await runBaton(['restore', gen, '--to', out]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^restored \d+ entries \(\d+ files, \d+ bytes\) from /m);
    const restored = join(out, rel(tricky));
    assert.deepEqual(listing(restored), trickyBefore);
    assert.deepEqual(await fileHashes(restored), hashesBefore);
    // spot checks that the listing really holds what it should
    assert.ok(trickyBefore.some((l) => l.startsWith('p | 620 | batonRstOwner | ') && l.endsWith(' | fifo')));
    assert.ok(trickyBefore.some((l) => l.startsWith('f | 4755 | root | root | ') && l.endsWith(' | suid')));
    assert.ok(trickyBefore.some((l) => l.startsWith('d | 1777 ') && l.endsWith(' | sticky')));
    assert.ok(
      trickyBefore.some(
        (l) => l.startsWith('l | 777 | batonRstOwner | ') && l.includes('1000000000.1234567890'),
      ),
    );
    if (hasDevice) assert.ok((await lstat(join(restored, 'null-dev'))).isCharacterDevice());
    assert.equal(await readlink(join(restored, 'abs-link')), '/etc/hostname');
    assert.ok((await lstat(Buffer.from(`${restored}/\xe9\xff`, 'latin1'))).isFile());
    // the app data path came along, with the directories leading to it
    assert.equal(
      await readFile(join(out, rel(app.dataDir), 'static', 'readme.txt'), 'utf8'),
      'fake app data that never changes\n',
    );
    // no work dir of the restore left behind
    assert.deepEqual(await readdir(out), [rel(root).split('/')[0]]);
  },
);

test(
  'restore --path restores only that subtree (and the directories leading to it)',
  { skip: NEEDS_ROOT },
  async () => {
    const out = join(root, 'out-sub');
    const r = await runBaton(['restore', gen, '--to', out, '--path', `${rel(tricky)}/sub`]);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await readdir(join(out, rel(tricky))), ['sub']);
    assert.deepEqual(listing(join(out, rel(tricky), 'sub')), listing(join(tricky, 'sub')));
    assert.equal(existsSync(join(out, rel(app.dataDir))), false, 'the app data is not part of the subtree');
    const missing = await runBaton([
      'restore',
      gen,
      '--to',
      join(root, 'out-none'),
      '--path',
      'no/such/path',
    ]);
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /baton: restore: --path no\/such\/path is not in the generation/);
    assert.equal(existsSync(join(root, 'out-none')), false, 'nothing was written');
  },
);

test(
  'restore refuses a non-empty directory without --force and writes into it with --force',
  { skip: NEEDS_ROOT },
  async () => {
    const out = join(root, 'out-busy');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine\n');
    const refused = await runBaton(['restore', gen, '--to', out]);
    assert.equal(refused.code, 2, show(refused));
    assert.match(refused.stderr, /^baton: restore: .*out-busy is not empty/m);
    assert.deepEqual(await readdir(out), ['keep.txt']);
    const forced = await runBaton(['restore', gen, '--to', out, '--force']);
    assert.equal(forced.code, 0, show(forced));
    assert.equal(await readFile(join(out, 'keep.txt'), 'utf8'), 'mine\n');
    assert.deepEqual(listing(join(out, rel(tricky))), trickyBefore);
  },
);

test(
  'verify finds a flipped byte only with --deep; restore of that generation stops naming the file',
  { skip: NEEDS_ROOT },
  async () => {
    const copy = join(root, 'corrupt', genId);
    await mkdir(join(root, 'corrupt'));
    await sh(`cp -a '${gen}' '${copy}'`);
    const victim = join(copy, 'tree', rel(tricky), 'owned.txt');
    const bytes = await readFile(victim);
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    await writeFile(victim, bytes);

    const plain = await runBaton(['verify', copy]);
    assert.equal(plain.code, 0, show(plain));
    assert.match(plain.stdout, /^ok +\S+/m);
    const deep = await runBaton(['verify', '--deep', copy]);
    assert.equal(deep.code, 1, show(deep));
    assert.match(deep.stdout, /^FAIL +\S+/m);
    assert.match(deep.stdout, /hash: \S*tricky\/owned\.txt: sha256/);
    assert.match(deep.stderr, /^baton: verify: 1 of 1 generation\(s\) failed: .*owned\.txt/m);
    const good = await runBaton(['verify', '--deep', gen]);
    assert.equal(good.code, 0, show(good));

    const out = join(root, 'out-corrupt');
    const restored = await runBaton(['restore', copy, '--to', out]);
    assert.equal(restored.code, 1, show(restored));
    assert.match(
      restored.stderr,
      /^baton: restore: the generation is damaged: \S*tricky\/owned\.txt has sha256 /m,
    );
    assert.equal(
      existsSync(join(out, rel(tricky), 'owned.txt')),
      false,
      'the damaged file is not left behind',
    );
  },
);

test(
  'verify --all checks every generation of a source config and of a sink config',
  { skip: NEEDS_ROOT },
  async () => {
    const src = await runBaton(['verify', '--all', '--deep', '--config', config]);
    assert.equal(src.code, 0, show(src));
    assert.match(src.stdout, new RegExp(`^ok +${gen} `, 'm'));

    const store = join(root, 'sink-store');
    const sinkGen = join(store, 'shop-rst', 'data', genId);
    await mkdir(join(store, 'shop-rst', 'data'), { recursive: true });
    await sh(`cp -a '${gen}' '${sinkGen}'`);
    const sinkConfig = join(root, 'sink.yaml');
    await writeFile(
      sinkConfig,
      `store: ${store}
stateDir: ${join(root, 'sink-state')}
sources:
  - name: shop-rst
    host: 127.0.0.1
    knownHosts: ${join(root, 'known_hosts')}
    streams:
      data: { user: batonRstData, identity: ${join(root, 'key')}, generations: 3 }
`,
    );
    const ok = await runBaton(['verify', '--all', '--json', '--config', sinkConfig]);
    assert.equal(ok.code, 0, show(ok));
    const report = JSON.parse(ok.stdout) as { ok: boolean; generations: Array<{ dir: string; ok: boolean }> };
    assert.deepEqual(
      report.generations.map((g) => [g.dir, g.ok]),
      [[sinkGen, true]],
    );
    await writeFile(join(sinkGen, 'tree', 'stray'), 'not in the manifest\n');
    const bad = await runBaton(['verify', '--all', '--config', sinkConfig]);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stdout, /extra: stray: in tree\/ but not in the manifest/);
    const usage = await runBaton(['verify']);
    assert.equal(usage.code, 2, show(usage));
  },
);

/** A hand-made generation: tree/ as given, a manifest of `entries` (files hashed from `contents`). */
async function hostileGeneration(
  dir: string,
  entries: Array<{ type: 'd' | 'f' | 'l'; path: string; target?: string; content?: string }>,
): Promise<void> {
  await mkdir(join(dir, 'tree'), { recursive: true });
  const lines = [MANIFEST_HEADER];
  for (const e of entries) {
    const content = Buffer.from(e.content ?? '');
    const entry: ManifestEntry = {
      type: e.type,
      mode: e.type === 'd' ? 0o755 : e.type === 'l' ? 0o777 : 0o644,
      uid: 0,
      gid: 0,
      user: 'root',
      group: 'root',
      mtimeNs: 1_000_000_000_000_000_000n,
      size: e.type === 'f' ? content.length : 0,
      sha256: e.type === 'f' ? createHash('sha256').update(content).digest('hex') : undefined,
      path: Buffer.from(e.path),
      target: e.target === undefined ? undefined : Buffer.from(e.target),
    };
    lines.push(formatManifestLine(entry));
  }
  await writeFile(join(dir, 'manifest'), `${lines.join('\n')}\n`);
}

test('a hostile generation cannot make restore write outside the target', { skip: NEEDS_ROOT }, async () => {
  // 1. a symlink to the outside, then a file below it
  const g1 = join(root, 'hostile1');
  await hostileGeneration(g1, [
    { type: 'l', path: 'a', target: outside },
    { type: 'f', path: 'a/x', content: 'escaped\n' },
  ]);
  await writeFile(join(g1, 'tree', 'x'), 'escaped\n');
  const r1 = await runBaton(['restore', g1, '--to', join(root, 'out-hostile1')]);
  assert.equal(r1.code, 1, show(r1));
  assert.match(
    r1.stderr,
    /^baton: restore: the manifest is damaged or hostile, nothing was restored: .*parent directory not listed/m,
  );
  assert.deepEqual(await readdir(outside), []);
  assert.equal(existsSync(join(root, 'out-hostile1')), false);

  // 2. a symlink planted in the target (restoring with --force) is replaced, never followed
  const g2 = join(root, 'hostile2');
  await hostileGeneration(g2, [
    { type: 'd', path: 'a' },
    { type: 'f', path: 'a/x', content: 'inside\n' },
    { type: 'l', path: 'b', target: join(outside, 'b') },
  ]);
  await mkdir(join(g2, 'tree', 'a'));
  await writeFile(join(g2, 'tree', 'a', 'x'), 'inside\n');
  await symlink(join(outside, 'b'), join(g2, 'tree', 'b'));
  const out2 = join(root, 'out-hostile2');
  await mkdir(out2);
  await symlink(outside, join(out2, 'a'));
  const r2 = await runBaton(['restore', g2, '--to', out2, '--force']);
  assert.equal(r2.code, 0, show(r2));
  assert.deepEqual(await readdir(outside), []);
  assert.ok((await lstat(join(out2, 'a'))).isDirectory());
  assert.equal(await readFile(join(out2, 'a', 'x'), 'utf8'), 'inside\n');
  assert.ok((await lstat(join(out2, 'b'))).isSymbolicLink());

  // 3. a directory of the manifest that is a symlink in tree/: nothing is read through it
  const g3 = join(root, 'hostile3');
  const secretDir = join(root, 'secret-dir');
  await mkdir(secretDir);
  await writeFile(join(secretDir, 'x'), 'secret\n');
  await hostileGeneration(g3, [
    { type: 'd', path: 'a' },
    { type: 'f', path: 'a/x', content: 'secret\n' },
  ]);
  await symlink(secretDir, join(g3, 'tree', 'a'));
  const out3 = join(root, 'out-hostile3');
  const r3 = await runBaton(['restore', g3, '--to', out3]);
  assert.equal(r3.code, 1, show(r3));
  assert.match(r3.stderr, /^baton: restore: the generation is damaged: a is not a directory in tree\//m);
  assert.equal(existsSync(join(out3, 'a', 'x')), false);
});

test(
  'source restore swaps the data paths back to a generation with the app stopped, keeping a safety copy',
  { skip: NEEDS_ROOT },
  async () => {
    const refused = await runBaton(['source', 'restore', genId, '--config', config]);
    assert.equal(refused.code, 2, show(refused));
    assert.match(refused.stderr, /^baton: source restore: no terminal to confirm on: pass --yes/m);
    const unknown = await runBaton(['source', 'restore', '2001-01-01T000000Z', '--yes', '--config', config]);
    assert.equal(unknown.code, 2, show(unknown));

    // changes after the backup: a new file, a changed file, a removed dir, a new file in the app data
    await writeFile(join(tricky, 'added.txt'), 'added after the backup\n');
    await appendFile(join(tricky, 'owned.txt'), 'changed\n');
    await rm(join(tricky, 'empty'), { recursive: true });
    await writeFile(join(app.dataDir, 'extra.txt'), 'new app data\n');
    assert.notDeepEqual(listing(tricky), trickyBefore);

    const r = await runBaton(['source', 'restore', genId, '--yes', '--config', config]);
    assert.equal(r.code, 0, show(r));
    assert.ok(app.isRunning(), 'the app runs again');
    assert.deepEqual(listing(tricky), trickyBefore);
    assert.deepEqual(await fileHashes(tricky), hashesBefore);
    assert.equal(existsSync(join(app.dataDir, 'extra.txt')), false);
    assert.ok(existsSync(join(app.dataDir, 'static', 'readme.txt')));
    // the safety copy has the data as it was before the restore, and the undo command points at it
    const [stamp] = await readdir(join(state, 'restore-safety'));
    assert.ok(stamp);
    const safety = join(state, 'restore-safety', stamp);
    assert.equal(await readFile(join(safety, rel(tricky), 'added.txt'), 'utf8'), 'added after the backup\n');
    assert.equal(await readFile(join(safety, rel(app.dataDir), 'extra.txt'), 'utf8'), 'new app data\n');
    assert.match(
      r.stdout,
      new RegExp(`rsync -aH --modify-window=-1 --delete --numeric-ids ${safety}${tricky}/ ${tricky}/`),
    );
    // no work dirs left next to the data paths
    assert.deepEqual((await readdir(join(root, 'src'))).sort(), ['tricky']);
    assert.deepEqual(
      (await readdir(join(root, 'app'))).filter((n) => n.includes('baton')),
      [],
    );
  },
);
