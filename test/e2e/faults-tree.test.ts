import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  chmod,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { readManifest } from '../../src/generation/manifest-file.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { formatManifestLine } from '../../src/core/manifest.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  makeKeyPair,
  writeAuthorizedKeys,
  type KeyPair,
  type TestUser,
  needsRootOrSkipFile,
} from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, type SourceSetup } from '../helpers/source-setup.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { writeGeneration, type GenerationOptions, type WrittenGeneration } from '../helpers/gate-fixtures.js';
import { assertSinkFailure, publishedGenerations, treeListing } from '../helpers/sink-invariants.js';

// Issue "Faults", case 17: symlinks to /etc, symlinked parent dirs, FIFOs and device files in the tree
// -> stored as what they are or rejected; nothing outside the store is read or written, on pull,
// verify or restore. An honest source with such a tree (real backup, real sshd, real rsync), a
// HOSTILE source whose tree lies about them (generations written by hand into the handover), and a
// sink store tampered with afterwards (verify --deep and restore must refuse, never block).
const NEEDS_ROOT = needsRootOrSkipFile('faults-tree', 'users, sshd, mknod');

const USERS = { data: 'batonFxTData', logs: 'batonFxTLogs' };
const TOKEN = `outside-${randomBytes(8).toString('hex')}`;
let root: string;
let smtp: SmtpSink;
let sshd: Sshd;
let src: SourceSetup;
let dataUser: TestUser;
let dataKey: KeyPair;
let logKey: KeyPair;
let sinkFile: string;
let sinkStore: string;
let sinkData: string;
/** a directory outside everything baton was told about: nothing may read or write it */
let outside: string;
/** a FIFO on the sink outside its store: opening it for reading blocks until a writer comes */
let sinkFifo: string;
/** the honest generation pulled by the first test */
let honestGen = '';
let nextSecond = 0;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-fxt-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  dataUser = await ensureUser(USERS.data);
  const logUser = await ensureUser(USERS.logs);
  const keys = join(root, 'keys');
  dataKey = await makeKeyPair(keys, 'data');
  logKey = await makeKeyPair(keys, 'logs');
  sshd = await startSshd();
  src = await makeSourceSetup(root, { name: 'fxt', dataUser: USERS.data, logsUser: USERS.logs });
  const gate = (stream: string) =>
    `restrict,command="${process.execPath} ${BATON_MAIN} gate ${stream} --config ${src.config}"`;
  await writeAuthorizedKeys(dataUser, [`${gate('data')} ${dataKey.publicKey}`]);
  await writeAuthorizedKeys(logUser, [`${gate('logs')} ${logKey.publicKey}`]);
  outside = join(root, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret.txt'), `${TOKEN}\n`);
  sinkFifo = join(root, 'sink-fifo');
  await sh(`mkfifo '${sinkFifo}'`);
  sinkStore = await makeSinkStore(join(root, 'sink-store'));
  sinkData = join(sinkStore, 'fxt', 'data');
  sinkFile = join(root, 'sink.yaml');
  await writeFile(
    sinkFile,
    `store: ${sinkStore}
stateDir: ${join(root, 'sink-state')}
sources:
  - name: fxt
    host: 127.0.0.1
    port: ${sshd.port}
    knownHosts: ${sshd.knownHostsFile}
    streams:
      data: { user: ${USERS.data}, identity: ${dataKey.privateKey}, generations: 5 }
      logs: { user: ${USERS.logs}, identity: ${logKey.privateKey}, generations: 2 }
alerts:
  mail: { to: [ops@example.com], from: baton@sink, smtp: "${smtp.url}" }
`,
  );
});

after(async () => {
  if (NEEDS_ROOT) return;
  src.app.kill();
  await sshd.stop();
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

async function sh(script: string): Promise<void> {
  const r = await runProcess(['sh', '-c', script], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr}`);
}

/** type (and target) of every manifest entry, by path */
async function manifestTypes(manifest: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of readManifest(manifest)) {
    out.set(e.path.toString(), e.target ? `${e.type} ${e.target.toString()}` : e.type);
  }
  return out;
}

/** What must never change: the outside dir (listing, mtimes, the secret not even read) and /etc's metadata. */
async function outsideSnapshot(): Promise<string> {
  const secret = await stat(join(outside, 'secret.txt'));
  const etc = await stat('/etc');
  return JSON.stringify({
    listing: await treeListing(outside),
    secretAtime: secret.atimeMs,
    etc: [etc.mode, etc.uid, etc.gid],
  });
}

const pull = () => runBaton(['sink', 'pull', 'data', '--config', sinkFile], { timeoutMs: 90_000 });

test(
  'case 17: symlinks to /etc and to a dir outside, a FIFO and a char device in the app data -> stored as what they are, pulled and verified; verify --deep and restore recreate them, nothing read or written through them',
  { skip: NEEDS_ROOT },
  async () => {
    const data = src.app.dataDir;
    await symlink('/etc', join(data, 'etc-link'));
    await symlink(outside, join(data, 'conf')); // a symlinked parent directory
    await sh(`mkfifo '${join(data, 'fifo')}' && mknod '${join(data, 'null-dev')}' c 1 3`);
    await mkdir(join(data, 'sub'));
    await writeFile(join(data, 'sub', 'file.txt'), 'inside\n');
    const untouched = await outsideSnapshot();
    try {
      const b = await runBaton(['source', 'backup', '--config', src.config]);
      assert.equal(b.code, 0, show(b));
      const [id] = await generationIds(src.handoverData);
      assert.ok(id);
      honestGen = id;
      const rel = data.slice(1);
      const expected: Record<string, string> = {
        [`${rel}/etc-link`]: 'l /etc',
        [`${rel}/conf`]: `l ${outside}`,
        [`${rel}/fifo`]: 'p',
        [`${rel}/null-dev`]: 'c 1:3',
        [`${rel}/sub`]: 'd',
        [`${rel}/sub/file.txt`]: 'f',
      };
      const handoverTypes = await manifestTypes(join(src.handoverData, id, 'manifest'));
      for (const [p, t] of Object.entries(expected)) assert.equal(handoverTypes.get(p), t, p);
      for (const p of handoverTypes.keys()) {
        assert.ok(!p.startsWith(`${rel}/conf/`) && !p.startsWith(`${rel}/etc-link/`), `followed: ${p}`);
      }

      const r = await pull();
      assert.equal(r.code, 0, show(r));
      const gen = join(sinkData, id);
      assert.deepEqual(await manifestTypes(join(gen, 'manifest')), handoverTypes, 'stored as they are');
      const tree = join(gen, 'tree', rel);
      assert.equal(await readlink(join(tree, 'etc-link')), '/etc');
      assert.equal(await readlink(join(tree, 'conf')), outside);
      // FIFOs and devices live in the manifest only: nothing in tree/ that could block or leak
      assert.equal(existsSync(join(tree, 'fifo')), false);
      assert.equal(existsSync(join(tree, 'null-dev')), false);
      const grep = await runProcess(['grep', '-rlF', '--', TOKEN, sinkStore, join(root, 'sink-state')], {
        timeoutMs: 30_000,
      });
      assert.equal(grep.stdout.trim(), '', 'nothing read through the symlinked dir');

      const v = await runBaton(['verify', '--deep', gen], { timeoutMs: 60_000 });
      assert.equal(v.code, 0, show(v));

      const out = join(root, 'restored');
      const rs = await runBaton(['restore', gen, '--to', out], { timeoutMs: 60_000 });
      assert.equal(rs.code, 0, show(rs));
      const back = join(out, rel);
      assert.equal(await readlink(join(back, 'etc-link')), '/etc');
      assert.equal(await readlink(join(back, 'conf')), outside);
      assert.ok((await lstat(join(back, 'fifo'))).isFIFO());
      const dev = await lstat(join(back, 'null-dev'));
      assert.ok(dev.isCharacterDevice());
      assert.equal(dev.rdev, (await lstat('/dev/null')).rdev);
      assert.equal(await readFile(join(back, 'sub', 'file.txt'), 'utf8'), 'inside\n');

      // a symlinked parent dir planted in the restore target does not redirect writes outside --to
      const planted = join(root, 'planted-outside');
      await mkdir(planted);
      const out2 = join(root, 'restored-over-link');
      await mkdir(join(out2, rel, '..'), { recursive: true });
      await symlink(planted, join(out2, rel));
      const forced = await runBaton(['restore', gen, '--to', out2, '--force'], { timeoutMs: 60_000 });
      assert.equal(forced.code, 0, show(forced));
      assert.deepEqual(await readdir(planted), [], 'nothing written through the planted link');
      assert.ok((await lstat(join(out2, rel))).isDirectory());
      assert.equal(await readFile(join(out2, rel, 'sub', 'file.txt'), 'utf8'), 'inside\n');
      assert.equal(await outsideSnapshot(), untouched, 'outside dir and /etc untouched, secret never read');
    } finally {
      for (const n of ['etc-link', 'conf', 'fifo', 'null-dev'])
        await unlink(join(data, n)).catch(() => undefined);
      await rm(join(data, 'sub'), { recursive: true, force: true });
    }
  },
);

async function chownTree(path: string): Promise<void> {
  await lchown(path, dataUser.uid, dataUser.gid);
  if ((await lstat(path)).isDirectory()) {
    for (const name of await readdir(path)) await chownTree(join(path, name));
  }
}

/** A hand-written generation in the data handover, owned by the stream user like the real thing. */
const STAGE_BASE = Math.floor(Date.now() / 1000) * 1000 + 5 * 60_000;

async function stage(opts: GenerationOptions): Promise<WrittenGeneration> {
  // newer than any real backup of this file, but within limits.futureSkew (10 min) of the sink's clock
  const id = formatGenerationId(new Date(STAGE_BASE + 1000 * nextSecond++));
  const g = await writeGeneration(src.handoverData, id, { source: 'fxt', stream: 'data', ...opts });
  await chownTree(g.dir);
  return g;
}

const HOSTILE_FILES = { 'data/x.txt': 'evil\n', 'ok.txt': 'ok\n' };

const hostile: Array<{ what: string; opts: GenerationOptions; problem: RegExp }> = [
  {
    what: 'a FIFO where the manifest says regular file',
    opts: {
      files: HOSTILE_FILES,
      tamper: async (d) => {
        await unlink(join(d, 'tree/data/x.txt'));
        await sh(`mkfifo '${join(d, 'tree/data/x.txt')}'`);
      },
    },
    problem: /data\/x\.txt/,
  },
  {
    what: 'a char device (/dev/zero, endless) where the manifest says regular file',
    opts: {
      files: HOSTILE_FILES,
      tamper: async (d) => {
        await unlink(join(d, 'tree/data/x.txt'));
        await sh(`mknod '${join(d, 'tree/data/x.txt')}' c 1 5`);
      },
    },
    problem: /data\/x\.txt/,
  },
  {
    what: 'a symlink to a FIFO on the sink where the manifest lists a FIFO',
    opts: {
      files: { ...HOSTILE_FILES, zz: { symlink: 'placeholder' } },
      manifest: (generated) =>
        generated.replace(
          /^l .* zz .*$/m,
          formatManifestLine({
            type: 'p',
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: 'root',
            group: 'root',
            mtimeNs: 1_000_000_000_000_000_000n,
            size: 0,
            sha256: undefined,
            path: Buffer.from('zz'),
            target: undefined,
          }),
        ),
      tamper: async (d) => {
        await unlink(join(d, 'tree/zz'));
        await symlink(sinkFifo, join(d, 'tree/zz'));
      },
    },
    problem: /extra: zz: in tree\/ but not in the manifest/,
  },
];

for (const h of hostile) {
  test(
    `case 17 (hostile source): ${h.what} -> rejected (quarantined, not acked), never blocks, nothing outside read`,
    { skip: NEEDS_ROOT },
    async () => {
      const before = await publishedGenerations(sinkData);
      const untouched = await outsideSnapshot();
      const g = await stage(h.opts);
      try {
        const n = smtp.messages.length;
        const r = await pull();
        assert.equal(r.timedOut, false, `the pull blocked: ${show(r)}`);
        await assertSinkFailure(r, {
          code: 1,
          message: new RegExp(`generation ${g.id} failed verification \\(quarantined in \\S+, not acked\\)`),
          config: sinkFile,
          smtp,
          mailsBefore: n,
          subject: /pull of data FAILED for fxt/,
        });
        assert.match(r.stdout, h.problem, show(r));
        assert.deepEqual(await generationIds(src.handoverData), [g.id], 'not acked');
        assert.deepEqual(await publishedGenerations(sinkData), before, 'nothing published or pruned');
        const q = await readdir(join(sinkData, '.quarantine'));
        assert.ok(
          q.some((name) => name.startsWith(`${g.id}.`)),
          `quarantined: ${q.join(' ')}`,
        );
        assert.equal(await outsideSnapshot(), untouched);
      } finally {
        await rm(g.dir, { recursive: true, force: true });
      }
    },
  );
}

const tampered: Array<{
  what: string;
  tamper: (tree: string) => Promise<void>;
  verify: RegExp;
  restore: RegExp;
}> = [
  {
    what: 'a FIFO in place of a file',
    tamper: async (tree) => {
      await unlink(join(tree, 'sub/file.txt'));
      await sh(`mkfifo '${join(tree, 'sub/file.txt')}'`);
    },
    verify: /sub\/file\.txt: is other, manifest says f/,
    restore: /the generation is damaged: \S*sub\/file\.txt is not a file in tree\//,
  },
  {
    what: 'a symlink to a directory outside in place of a directory (a symlinked parent)',
    tamper: async (tree) => {
      await rm(join(tree, 'sub'), { recursive: true });
      // same content as the real file: only the parent gives it away
      await writeFile(join(outside, 'file.txt'), 'inside\n');
      await symlink(outside, join(tree, 'sub'));
    },
    verify: /sub: is l, manifest says d/,
    restore: /the generation is damaged: \S*sub is not a directory in tree\//,
  },
];

for (const t of tampered) {
  test(
    `case 17 (tampered sink store): ${t.what} -> verify --deep and restore refuse at once, nothing read or written outside`,
    { skip: NEEDS_ROOT },
    async () => {
      assert.ok(honestGen, 'needs the honest generation of the first test');
      const copy = join(root, `tampered-${randomBytes(3).toString('hex')}`);
      await sh(`cp -a '${join(sinkData, honestGen)}' '${copy}'`);
      const tree = join(copy, 'tree', src.app.dataDir.slice(1));
      try {
        await t.tamper(tree);
        const untouched = await outsideSnapshot();
        const v = await runBaton(['verify', '--deep', copy], { timeoutMs: 60_000 });
        assert.equal(v.timedOut, false, `verify blocked: ${show(v)}`);
        assert.equal(v.code, 1, show(v));
        assert.match(v.stdout, t.verify);
        const out = join(root, `out-${randomBytes(3).toString('hex')}`);
        const r = await runBaton(['restore', copy, '--to', out], { timeoutMs: 60_000 });
        assert.equal(r.timedOut, false, `restore blocked: ${show(r)}`);
        assert.equal(r.code, 1, show(r));
        assert.match(r.stderr.trim().split('\n').at(-1) ?? '', t.restore);
        assert.equal(await outsideSnapshot(), untouched, 'nothing outside read or written');
      } finally {
        await rm(copy, { recursive: true, force: true });
        await rm(join(outside, 'file.txt'), { force: true });
      }
    },
  );
}
