/**
 * `baton gate` end to end: the CLI as the forced command behind a fake remote shell, driven by a real
 * rsync client (pulls, pushes, hostile options) and by plain list / ack requests.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { pullArgv } from '../../src/sink/pull.js';
import {
  MAX_INLINE_MANIFEST_BYTES,
  MAX_LIST_HEAD_BYTES,
  parseListingWithHead,
} from '../../src/core/gate-replies.js';
import { BATON_MAIN } from '../helpers/cli.js';
import { availableRsyncs, pathWith, type RsyncBinary } from '../helpers/rsync-versions.js';
import { sshClientArgs, startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  isRoot,
  makeKeyPair,
  skipUnlessRoot,
  writeAuthorizedKeys,
  type KeyPair,
  type TestUser,
} from '../helpers/users.js';
import type { StreamName } from '../../src/config/schema.js';
import { formatAnswer } from '../../src/core/ack-challenge.js';
import {
  ackDialogue,
  ackThroughRsh,
  copyGeneration,
  gateCliArgv,
  REPO_ROOT,
  rsyncThroughRsh,
  runThroughRsh,
  sha256File,
  writeFakeRsh,
  writeGeneration,
  writeSourceFixture,
  type SourceFixture,
  type SourceFixtureOptions,
} from '../helpers/gate-fixtures.js';
import { z } from 'zod';

/**
 * The client options of baton's own pull (src/sink/pull.ts), between the program name and `-e`: what the
 * gate must serve. Other options are what a stolen key might try.
 */
function batonPullOptions(): string[] {
  const argv = pullArgv({
    transport: {
      rsh: ['ssh'],
      remote: 'x',
      describe: 'options only',
      run: () => Promise.reject(new Error('not used')),
      dialogue: () => {
        throw new Error('not used');
      },
      close: () => Promise.resolve(),
    },
    id: '2026-11-28T061922Z',
    incoming: '/nonexistent',
    linkDest: undefined,
    ioTimeoutMs: 30_000,
  });
  return argv.slice(1, argv.indexOf('-e'));
}
const PULL = batonPullOptions();

const G1 = '2026-11-25T061922Z';
const G2 = '2026-11-26T061922Z';
const G3 = '2026-11-27T061922Z';
const G4 = '2026-11-28T061922Z';
const G5 = '2026-11-29T061922Z';

let tmp: string;
let counter = 0;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'baton-gate-e2e-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Setup {
  fx: SourceFixture;
  rsh: Record<StreamName, string>;
  /** A fresh empty directory for received files. */
  dest: () => Promise<string>;
}

async function setup(opts: SourceFixtureOptions = {}): Promise<Setup> {
  const root = join(tmp, `case-${++counter}`);
  const fx = await writeSourceFixture(root, opts);
  // The built CLI (like every e2e test): a gate starts in a fraction of the time tsx needs.
  const gate = (stream: StreamName) => [
    process.execPath,
    BATON_MAIN,
    'gate',
    stream,
    '--config',
    fx.configFile,
  ];
  const rsh = {
    data: await writeFakeRsh(join(root, 'bin'), 'rsh-data', gate('data')),
    logs: await writeFakeRsh(join(root, 'bin'), 'rsh-logs', gate('logs')),
  };
  let n = 0;
  const dest = async (): Promise<string> => {
    const d = join(root, `dest-${++n}`);
    await mkdir(d);
    return d;
  };
  return { fx, rsh, dest };
}

function assertRefused(r: RunResult, reason: RegExp): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.trim().split('\n');
  assert.match(lines.at(-1) ?? '', /^baton gate: refused: /);
  assert.match(lines.at(-1) ?? '', reason);
  const logged = lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((rec) => rec.msg === 'gate refused');
  assert.ok(logged, `a JSON log line for the refusal in: ${r.stderr}`);
  assert.equal(logged.level, 'warn');
}

/** `rsync -e <fake rsh> …` with the given rsync as client and, through PATH, as the gate's server. */
function rsyncWith(rsync: RsyncBinary, rsh: string, args: readonly string[]): Promise<RunResult> {
  return runProcess([rsync.bin, '-e', rsh, ...args], {
    timeoutMs: 60_000,
    env: { ...process.env, PATH: pathWith(rsync.binDir) },
  });
}

/** Entries of `dir`; the gate's own bookkeeping (.gate-events, .rejected) left out. */
async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== '.gate-events' && n !== '.rejected').sort();
}

/** Regular files under `dir` (symlinks not followed) whose content includes `needle`, except `allowed`. */
async function filesContaining(dir: string, needle: string, allowed: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesContaining(path, needle, allowed)));
    else if (entry.isFile() && !allowed.includes(path) && (await readFile(path, 'utf8')).includes(needle)) {
      found.push(path);
    }
  }
  return found;
}

async function readTreeFile(dir: string, rel: string): Promise<string> {
  return readFile(join(dir, rel), 'utf8');
}

describe('gate rsync', () => {
  test('pull of a handover generation -> the whole generation arrives', async () => {
    const { fx, rsh, dest } = await setup();
    const g = await writeGeneration(fx.dataHandover, G4);
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.data, [...PULL, `x:${G4}/`, `${d}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await listing(d), ['SHA256SUMS', 'manifest', 'meta.json', 'tree']);
    assert.equal(await sha256File(join(d, 'manifest')), g.manifestSha256);
    assert.equal(await readTreeFile(d, 'tree/README.txt'), 'hello from the source\n');
    assert.equal(await readlink(join(d, 'tree/etc/current')), 'app.conf');
    // The handover is untouched by a pull.
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
  });

  test('pull from the logs gate -> reads the logs handover, not data', async () => {
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4, { files: { 'which.txt': 'data\n' } });
    await writeGeneration(fx.logsHandover, G4, { files: { 'which.txt': 'logs\n' }, stream: 'logs' });
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.logs, [...PULL, `x:${G4}/`, `${d}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readTreeFile(d, 'tree/which.txt'), 'logs\n');
  });

  test('rsync push (upload) -> refused, nothing written', async () => {
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4);
    const src = await dest();
    await writeFile(join(src, 'evil.txt'), 'planted\n');
    const r = await rsyncThroughRsh(rsh.data, ['-a', `${src}/`, `x:${G5}/`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /baton gate: refused: only a read-only rsync/);
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
    // Also into an existing generation.
    const r2 = await rsyncThroughRsh(rsh.data, ['-a', `${src}/`, `x:${G4}/tree/`]);
    assert.notEqual(r2.code, 0);
    assert.equal(existsSync(join(fx.dataHandover, G4, 'tree', 'evil.txt')), false);
  });

  test('pull with --remove-source-files -> refused, the files stay', async () => {
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4);
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.data, [...PULL, '--remove-source-files', `x:${G4}/`, `${d}/`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refused: rsync pull: option "--remove-source-files" is not allowed/);
    assert.equal(await readTreeFile(fx.dataHandover, `${G4}/tree/README.txt`), 'hello from the source\n');
    assert.ok(existsSync(join(fx.dataHandover, G4, 'manifest')));
  });

  test('pull with --delete -> deletes only on the receiver, the handover is untouched', async () => {
    // rsync never sends --delete to a sender server; the gate's allow-list would refuse it if it did.
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4);
    const d = await dest();
    // inside tree/: baton's pull filter protects (and verify refuses) any other top-level name
    await mkdir(join(d, 'tree'), { recursive: true });
    await writeFile(join(d, 'tree', 'stale.txt'), 'stale\n');
    const r = await rsyncThroughRsh(rsh.data, [...PULL, '--delete', `x:${G4}/`, `${d}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(join(d, 'tree', 'stale.txt')), false);
    assert.deepEqual(await listing(join(fx.dataHandover, G4)), [
      'SHA256SUMS',
      'manifest',
      'meta.json',
      'tree',
    ]);
  });

  test('pull of ../ -> refused, nothing outside the handover is read', async () => {
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4);
    await writeFile(join(fx.root, 'handover', 'outside.txt'), 'outside\n');
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.data, [...PULL, 'x:../', `${d}/`]);
    assert.notEqual(r.code, 0);
    assert.deepEqual(await listing(d), []);
    const r2 = await rsyncThroughRsh(rsh.data, [...PULL, `x:${G4}/../../outside.txt`, `${d}/`]);
    assert.notEqual(r2.code, 0);
    assert.deepEqual(await listing(d), []);
  });

  test('pull of an absolute path -> resolved inside the handover, /etc/passwd is not read', async () => {
    const { fx, rsh, dest } = await setup();
    await writeGeneration(fx.dataHandover, G4);
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.data, [...PULL, 'x:/etc/passwd', `${d}/`]);
    assert.notEqual(r.code, 0);
    assert.deepEqual(await listing(d), []);
  });

  for (const rsync of availableRsyncs()) {
    test(`symlink in the handover to a secret outside -> received as a symlink, never its content (rsync ${rsync.version})`, async () => {
      const { fx, rsh, dest } = await setup();
      const secret = join(fx.root, 'shadow-like');
      await writeFile(secret, 'root:SECRET-HASH:19000::::::\n');
      await writeGeneration(fx.dataHandover, G4, {
        files: { 'ok.txt': 'fine\n', shadow: { symlink: secret }, etcdir: { symlink: '/etc' } },
      });
      const d = await dest();
      const r = await rsyncWith(rsync, rsh.data, [...PULL, `x:${G4}/`, `${d}/`]);
      assert.equal(r.code, 0, r.stderr);
      const st = await lstat(join(d, 'tree/shadow'));
      assert.ok(st.isSymbolicLink(), 'a symlink, not a file');
      assert.equal(await readlink(join(d, 'tree/shadow')), secret);
      assert.ok((await lstat(join(d, 'tree/etcdir'))).isSymbolicLink());

      // Asking the server to follow links is refused by the gate's allow-list, whatever the rsync version…
      for (const follow of ['-L', '--copy-links', '--copy-unsafe-links', '-k', '--copy-dirlinks', '-K']) {
        const d2 = await dest();
        const r2 = await rsyncWith(rsync, rsh.data, ['-a', follow, `x:${G4}/`, `${d2}/`]);
        assert.notEqual(r2.code, 0, `${follow} must be refused`);
        assert.match(r2.stderr, /baton gate: refused: rsync pull: option/, follow);
        assert.deepEqual(await listing(d2), [], `${follow}: nothing received`);
        // …also with exactly baton's own options besides.
        const d2b = await dest();
        const r2b = await rsyncWith(rsync, rsh.data, [...PULL, follow, `x:${G4}/tree/`, `${d2b}/`]);
        assert.notEqual(r2b.code, 0, `${follow} with baton's options must be refused`);
        assert.deepEqual(await listing(d2b), [], `${follow}: nothing received`);
      }
      // …and naming the link itself, or a path through the symlinked dir, is refused: only "<id>/" is served.
      for (const path of [
        `${G4}/tree/shadow`,
        `${G4}/tree/etcdir/passwd`,
        `${G4}/tree/etcdir/`,
        `${G4}/tree/`,
      ]) {
        const d3 = await dest();
        const r3 = await rsyncWith(rsync, rsh.data, [...PULL, `x:${path}`, `${d3}/`]);
        assert.notEqual(r3.code, 0, path);
        assert.match(r3.stderr, /the path must be "<generation id>\/"/, path);
        assert.deepEqual(await listing(d3), [], path);
      }

      // Nothing received anywhere carries the secret.
      assert.deepEqual(await filesContaining(join(fx.root), 'SECRET-HASH', [secret]), []);
    });
  }

  test('a generation dir that is a symlink to /etc -> not followed', async () => {
    const { fx, rsh, dest } = await setup();
    await symlink('/etc', join(fx.dataHandover, G4));
    const d = await dest();
    const r = await rsyncThroughRsh(rsh.data, [...PULL, `x:${G4}/`, `${d}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(existsSync(join(d, 'passwd')), false);
  });
});

describe('gate list', () => {
  test('list -> complete generations oldest first, with manifest hash and size', async () => {
    const { fx, rsh } = await setup();
    const g4 = await writeGeneration(fx.dataHandover, G4);
    const g2 = await writeGeneration(fx.dataHandover, G2, { files: { 'a.txt': 'a\n' } });
    // Not counted: an incomplete generation, a work dir, a symlinked generation, a symlinked manifest,
    // a name that is no id, a plain file named like an id.
    await writeGeneration(fx.dataHandover, G3, { complete: false });
    await mkdir(join(fx.dataHandover, `.${G5}`));
    await writeFile(join(fx.dataHandover, `.${G5}`, 'manifest'), 'partial');
    await symlink(g4.dir, join(fx.dataHandover, G5));
    const g1 = await writeGeneration(fx.dataHandover, G1);
    await rm(join(g1.dir, 'manifest'));
    await symlink(join(g4.dir, 'manifest'), join(g1.dir, 'manifest'));
    await mkdir(join(fx.dataHandover, 'not-an-id'));
    await writeFile(join(fx.dataHandover, '2026-11-30T061922Z'), 'file');

    const r = await runThroughRsh(rsh.data, 'list');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = JSON.parse(r.stdout) as {
      source: string;
      stream: string;
      generations: Array<{ id: string; manifestSha256: string; manifestBytes: number; ageSeconds: number }>;
    };
    assert.equal(out.source, 'test-source');
    assert.equal(out.stream, 'data');
    assert.deepEqual(
      out.generations.map((g) => [g.id, g.manifestSha256]),
      [
        [G2, g2.manifestSha256],
        [G4, g4.manifestSha256],
      ],
    );
    const manifestBytes = (await lstat(join(g4.dir, 'manifest'))).size;
    assert.equal(out.generations[1]?.manifestBytes, manifestBytes);
    assert.ok((out.generations[1]?.ageSeconds ?? -1) > 0);
    assert.ok(r.stdout.endsWith('}\n') && r.stdout.split('\n').length === 2, 'one JSON line');
  });

  test('list of an empty logs handover -> no generations', async () => {
    const { rsh } = await setup();
    const r = await runThroughRsh(rsh.logs, 'list');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { source: 'test-source', stream: 'logs', generations: [] });
  });
});

describe('gate list-head', () => {
  const asBytes = (rsh: string) =>
    runProcess([rsh, 'x', 'list-head'], {
      timeoutMs: 60_000,
      captureStdout: true,
      maxStdoutBytes: MAX_LIST_HEAD_BYTES,
      stdoutAsBytes: true,
    });
  const expectData = { source: 'test-source', stream: 'data' as const };

  test('list-head -> the listing and the oldest manifest byte for byte, which the sink parses', async () => {
    const { fx, rsh } = await setup();
    const g2 = await writeGeneration(fx.dataHandover, G2, { files: { 'a.txt': 'a\n' } });
    await writeGeneration(fx.dataHandover, G4);
    const r = await asBytes(rsh.data);
    assert.equal(r.code, 0, r.stderr);
    const parsed = parseListingWithHead(r.stdoutBytes ?? Buffer.alloc(0), expectData);
    assert.deepEqual(
      parsed.listing.generations.map((g) => g.id),
      [G2, G4],
    );
    assert.equal(parsed.head?.id, G2);
    assert.deepEqual(parsed.head?.manifest, await readFile(join(g2.dir, 'manifest')));
    assert.equal(
      createHash('sha256')
        .update(parsed.head?.manifest ?? Buffer.alloc(0))
        .digest('hex'),
      g2.manifestSha256,
    );
  });

  test('list-head of an empty handover -> the listing alone', async () => {
    const { rsh } = await setup();
    const r = await asBytes(rsh.data);
    assert.equal(r.code, 0, r.stderr);
    const parsed = parseListingWithHead(r.stdoutBytes ?? Buffer.alloc(0), expectData);
    assert.equal(parsed.listing.generations.length, 0);
    assert.equal(parsed.head, undefined);
  });

  test('list-head with a manifest over the inline cap -> listed, its bytes not sent (the sink uses rsync)', async () => {
    const { fx, rsh } = await setup();
    const g1 = await writeGeneration(fx.dataHandover, G1);
    // a manifest larger than the cap (its hash listed as it is): never read into the reply
    await writeFile(join(g1.dir, 'manifest'), Buffer.alloc(MAX_INLINE_MANIFEST_BYTES + 1, 0x61));
    const r = await asBytes(rsh.data);
    assert.equal(r.code, 0, r.stderr);
    const parsed = parseListingWithHead(r.stdoutBytes ?? Buffer.alloc(0), expectData);
    assert.equal(parsed.listing.generations[0]?.manifestBytes, MAX_INLINE_MANIFEST_BYTES + 1);
    assert.equal(parsed.head, undefined);
    assert.ok((r.stdoutBytes?.length ?? 0) < 4096, 'only the listing line');
  });

  test('list-head with arguments -> refused (nothing but the exact word)', async () => {
    const { fx, rsh } = await setup();
    await writeGeneration(fx.dataHandover, G2);
    const r = await runThroughRsh(rsh.data, `list-head ${G2}/../../../etc`);
    assertRefused(r, /not an allowed command/);
  });
});

describe('gate ack', () => {
  test('ack data -> moved into the source store, store pruned to N, the acked one kept', async () => {
    const { fx, rsh } = await setup({ generations: 2 });
    for (const id of [G1, G2, G3]) await writeGeneration(fx.store, id);
    const g = await writeGeneration(fx.dataHandover, G4);
    await writeGeneration(fx.dataHandover, G5);

    const r = await ackThroughRsh(
      rsh.data,
      `ack ${G4} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { acked: G4, action: 'moved', pruned: [G2, G1] });
    assert.deepEqual(await listing(fx.store), [G3, G4]);
    assert.deepEqual(await listing(fx.dataHandover), [G5]);
    assert.equal(await sha256File(join(fx.store, G4, 'manifest')), g.manifestSha256);
  });

  test('ack data with keepMonthly -> the source store keeps the newest of each of the last N months too', async () => {
    const { fx, rsh } = await setup({ generations: 1, calendar: { keepMonthly: 3 } });
    const older = ['2026-07-15T061922Z', '2026-08-10T061922Z', '2026-09-05T061922Z', '2026-10-01T061922Z'];
    for (const id of [...older, G1, G2, G3]) await writeGeneration(fx.store, id);
    const g = await writeGeneration(fx.dataHandover, G4);
    const r = await ackThroughRsh(
      rsh.data,
      `ack ${G4} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    const reply = z
      .object({ acked: z.string(), action: z.string(), pruned: z.array(z.string()) })
      .parse(JSON.parse(r.stdout));
    assert.equal(reply.acked, G4);
    // November: G4 (also the newest, `generations: 1`); October and September: their newest
    assert.deepEqual(await listing(fx.store), ['2026-09-05T061922Z', '2026-10-01T061922Z', G4]);
    assert.deepEqual([...reply.pruned].sort(), ['2026-07-15T061922Z', '2026-08-10T061922Z', G1, G2, G3]);
  });

  test('ack of an older generation than the store holds -> moved and not pruned away', async () => {
    const { fx, rsh } = await setup({ generations: 1 });
    await writeGeneration(fx.store, G5);
    const g = await writeGeneration(fx.dataHandover, G2);
    const r = await ackThroughRsh(
      rsh.data,
      `ack ${G2} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { acked: G2, action: 'moved', pruned: [] });
    assert.deepEqual(await listing(fx.store), [G2, G5]);
  });

  test('ack with a wrong hash -> refused, nothing moved', async () => {
    const { fx, rsh } = await setup({ generations: 1 });
    await writeGeneration(fx.store, G1);
    await writeGeneration(fx.dataHandover, G4);
    const r = await runThroughRsh(rsh.data, `ack ${G4} ${'0'.repeat(64)}`);
    assertRefused(r, /does not match/);
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
    assert.deepEqual(await listing(fx.store), [G1]);
  });

  test('ack of a generation that is not there -> refused', async () => {
    const { rsh } = await setup();
    assertRefused(await runThroughRsh(rsh.data, `ack ${G4} ${'0'.repeat(64)}`), /not pending/);
  });

  test('ack of an incomplete generation -> refused, it stays', async () => {
    const { fx, rsh } = await setup();
    await writeGeneration(fx.dataHandover, G4, { complete: false });
    assertRefused(await runThroughRsh(rsh.data, `ack ${G4} ${'0'.repeat(64)}`), /not pending/);
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
  });

  test('repeated ack -> succeeds again without moving anything', async () => {
    const { fx, rsh } = await setup({ generations: 2 });
    const g = await writeGeneration(fx.dataHandover, G4);
    const copy = await copyGeneration(g.dir, join(fx.root, 'sink'));
    const first = await ackThroughRsh(rsh.data, `ack ${G4} ${g.manifestSha256}`, copy);
    assert.equal(first.code, 0, first.stderr);
    const again = await ackThroughRsh(rsh.data, `ack ${G4} ${g.manifestSha256}`, copy);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { acked: G4, action: 'moved', pruned: [] });
    assert.deepEqual(await listing(fx.store), [G4]);
    // …but not with another hash.
    assertRefused(await runThroughRsh(rsh.data, `ack ${G4} ${'1'.repeat(64)}`), /does not match/);
  });

  test('ack after a crash mid-prune -> leftover .deleting dirs are removed', async () => {
    const { fx, rsh } = await setup({ generations: 3 });
    await writeGeneration(fx.store, G1);
    await writeGeneration(fx.store, G2);
    // A prune that crashed after renaming G1 away.
    await writeGeneration(fx.store, G3);
    await rename(join(fx.store, G3), join(fx.store, `.${G3}.deleting`));
    const g = await writeGeneration(fx.dataHandover, G4);
    const r = await ackThroughRsh(
      rsh.data,
      `ack ${G4} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await listing(fx.store), [G1, G2, G4]);
  });

  test('ack logs -> the generation is deleted from the logs handover', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.logsHandover, G4, { stream: 'logs' });
    await writeGeneration(fx.logsHandover, G5, { stream: 'logs' });
    const r = await ackThroughRsh(
      rsh.logs,
      `ack ${G4} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { acked: G4, action: 'deleted', pruned: [] });
    assert.deepEqual(await listing(fx.logsHandover), [G5]);
    assert.deepEqual(await listing(fx.store), [], 'logs never reach the source store');
  });

  test('ack logs with a wrong hash -> refused, nothing deleted', async () => {
    const { fx, rsh } = await setup();
    await writeGeneration(fx.logsHandover, G4, { stream: 'logs' });
    assertRefused(await runThroughRsh(rsh.logs, `ack ${G4} ${'f'.repeat(64)}`), /does not match/);
    assert.deepEqual(await listing(fx.logsHandover), [G4]);
  });

  test('ack on the data gate of a generation only in the logs handover -> refused', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.logsHandover, G4, { stream: 'logs' });
    assertRefused(await runThroughRsh(rsh.data, `ack ${G4} ${g.manifestSha256}`), /not pending/);
    assert.deepEqual(await listing(fx.logsHandover), [G4]);
  });
});

describe('gate ack proof and reject (issue 10, holes 2 and 12)', () => {
  async function events(handover: string): Promise<Array<Record<string, unknown>>> {
    const dir = join(handover, '.gate-events');
    if (!existsSync(dir)) return [];
    const out: Array<Record<string, unknown>> = [];
    for (const n of (await readdir(dir)).sort()) {
      out.push(JSON.parse(await readFile(join(dir, n), 'utf8')) as Record<string, unknown>);
    }
    return out;
  }

  test('ack without an answer (a key holder who never pulled) -> refused, nothing moved, event recorded', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.dataHandover, G4);
    const r = await ackThroughRsh(rsh.data, `ack ${G4} ${g.manifestSha256}`);
    assert.ok(r.challenged, 'the gate challenged');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^baton gate: refused: ack of .* refused: no answer/m);
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
    assert.deepEqual(await listing(fx.store), []);
    const [ev] = await events(fx.dataHandover);
    assert.equal(ev?.kind, 'ack-refused');
    assert.equal(ev?.id, G4);
  });

  test('ack with guessed or partly wrong proofs -> refused, nothing deleted', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.logsHandover, G4, { stream: 'logs' });
    const copy = await copyGeneration(g.dir, join(fx.root, 'sink'));
    const guess = await ackDialogue([rsh.logs, 'x'], `ack ${G4} ${g.manifestSha256}`, {
      answer: (_p, n) => formatAnswer(Array.from({ length: n }, () => 'a'.repeat(64))),
    });
    assert.equal(guess.code, 1);
    assert.match(guess.stderr, /wrong proof of receipt/);
    const oneWrong = await ackDialogue([rsh.logs, 'x'], `ack ${G4} ${g.manifestSha256}`, {
      copyDir: copy,
      answer: (p) => formatAnswer((p ?? []).map((h, i) => (i === 0 ? 'b'.repeat(64) : h))),
    });
    assert.equal(oneWrong.code, 1);
    assert.match(oneWrong.stderr, /1 of 8 range hashes are wrong/);
    const garbage = await ackDialogue([rsh.logs, 'x'], `ack ${G4} ${g.manifestSha256}`, {
      answer: () => `${'x'.repeat(100_000)}\n`,
    });
    assert.equal(garbage.code, 1);
    assert.match(garbage.stderr, /bad or late answer: a line longer than/);
    assert.deepEqual(await listing(fx.logsHandover), [G4], 'nothing deleted');
    assert.equal((await events(fx.logsHandover)).length, 3);
  });

  test('a generation without any non-empty file -> the manifest is challenged; a copy acks', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.dataHandover, G4, { files: { empty: '', l: { symlink: 'x' } } });
    const r = await ackThroughRsh(
      rsh.data,
      `ack ${G4} ${g.manifestSha256}`,
      await copyGeneration(g.dir, join(fx.root, 'sink')),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await listing(fx.store), [G4]);
  });

  test('reject -> moved to .rejected, no longer listed, event recorded; a repeat is ok', async () => {
    const { fx, rsh } = await setup();
    const g = await writeGeneration(fx.dataHandover, G4);
    await writeGeneration(fx.dataHandover, G5);
    const r = await runThroughRsh(rsh.data, `reject ${G4} ${g.manifestSha256}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { rejected: G4, keptIn: join(fx.dataHandover, '.rejected', G4) });
    assert.deepEqual(await listing(fx.dataHandover), [G5]);
    assert.equal(await sha256File(join(fx.dataHandover, '.rejected', G4, 'manifest')), g.manifestSha256);
    const list = await runThroughRsh(rsh.data, 'list');
    assert.deepEqual(
      (JSON.parse(list.stdout) as { generations: Array<{ id: string }> }).generations.map((x) => x.id),
      [G5],
    );
    const [ev] = await events(fx.dataHandover);
    assert.equal(ev?.kind, 'rejected');
    const again = await runThroughRsh(rsh.data, `reject ${G4} ${g.manifestSha256}`);
    assert.equal(again.code, 0, again.stderr);
    assertRefused(await runThroughRsh(rsh.data, `reject ${G5} ${'0'.repeat(64)}`), /does not match/);
    assert.deepEqual(await listing(fx.dataHandover), [G5]);
  });

  test('reject when .rejected is full -> refused, the generation stays pending', async () => {
    const { fx, rsh } = await setup();
    await mkdir(join(fx.dataHandover, '.rejected'));
    for (let i = 0; i < 20; i++)
      await mkdir(join(fx.dataHandover, '.rejected', `2026-01-01T0000${String(i).padStart(2, '0')}Z`));
    const g = await writeGeneration(fx.dataHandover, G4);
    assertRefused(await runThroughRsh(rsh.data, `reject ${G4} ${g.manifestSha256}`), /already holds 20/);
    assert.deepEqual(await listing(fx.dataHandover), [G4]);
  });

  test('gate events stay bounded: at most 50 files, the oldest dropped', async () => {
    const { fx, rsh } = await setup();
    const dir = join(fx.dataHandover, '.gate-events');
    await mkdir(dir);
    for (let i = 0; i < 60; i++)
      await writeFile(
        join(dir, `20200101T0000${String(i).padStart(2, '0')}000Z-0000000${i % 10}.json`),
        '{}',
      );
    await writeGeneration(fx.dataHandover, G4);
    const r = await runThroughRsh(rsh.data, `ack ${G4} ${'0'.repeat(64)}`);
    assertRefused(r, /does not match/);
    const names = (await readdir(dir)).sort();
    assert.equal(names.length, 50);
    assert.ok(!names.includes('20200101T000000000Z-00000000.json'), 'the oldest dropped');
  });
});

describe('gate refusals', () => {
  const hostile: Array<[string, string, RegExp]> = [
    ['a shell command', 'ls -la /', /not an allowed command/],
    ['list; rm -rf /', 'list; rm -rf /', /not an allowed command/],
    ['command substitution', '$(touch /tmp/baton-gate-pwned)', /not an allowed command/],
    ['a newline after list', 'list\ntouch /tmp/baton-gate-pwned', /control character/],
    ['very long input', `rsync --server --sender ${'x'.repeat(10_000)}`, /longer than 4096 bytes/],
    ['an rsync upload', 'rsync --server -logDtpre.iLsfxCIvu . 2026-11-28T061922Z/', /read-only rsync/],
    ['an ack of ../', `ack ../x ${'0'.repeat(64)}`, /no valid generation id/],
    ['scp', 'scp -f /etc/shadow', /not an allowed command/],
  ];
  for (const [name, command, reason] of hostile) {
    test(`${name} -> refused and logged`, async () => {
      const { fx, rsh } = await setup();
      await writeGeneration(fx.dataHandover, G4);
      const r = await runThroughRsh(rsh.data, command);
      assertRefused(r, reason);
      assert.equal(existsSync('/tmp/baton-gate-pwned'), false);
      assert.deepEqual(await listing(fx.dataHandover), [G4]);
    });
  }

  test('no command (an interactive login) -> refused', async () => {
    const { rsh } = await setup();
    assertRefused(await runThroughRsh(rsh.data, ''), /no command/);
  });

  test('refusal log line -> carries the stream, source and a bounded, escaped command', async () => {
    const { rsh } = await setup();
    const r = await runThroughRsh(rsh.data, `list\n${'y'.repeat(1000)}`);
    const rec = JSON.parse(r.stderr.split('\n').find((l) => l.startsWith('{')) ?? '{}') as Record<
      string,
      unknown
    >;
    assert.equal(rec.stream, 'data');
    assert.equal(rec.source, 'test-source');
    assert.ok(
      typeof rec.command === 'string' && rec.command.length <= 257 && rec.command.startsWith('list\n'),
    );
  });
});

describe('gate cli', () => {
  test('--help -> explains the authorized_keys line', async () => {
    const r = await runProcess([...gateCliArgv('data', '/nonexistent').slice(0, 5), '--help'], {
      captureStdout: true,
      cwd: REPO_ROOT,
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /restrict,command="baton gate data --config \/etc\/baton\/source.yaml"/);
  });

  test('logs gate on a source without a logs stream -> config error (exit 2)', async () => {
    const { rsh } = await setup({ logs: false });
    const r = await runThroughRsh(rsh.logs, 'list');
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /baton gate: this source has no logs stream configured/);
  });

  test('a stream other than data or logs -> usage error', async () => {
    const argv = gateCliArgv('data', '/nonexistent');
    argv[5] = 'secrets';
    const r = await runProcess(argv, {
      timeoutMs: 30_000,
      env: { ...process.env, SSH_ORIGINAL_COMMAND: 'list' },
    });
    assert.equal(r.code, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------
// A stolen sink key over a real sshd (issue 10, hole 1): the stream user's key with the forced gate, an
// attacker's rsync client of every available version against a gate whose rsync is the same version.

describe('stolen sink key over sshd', () => {
  const SECRET = `BZA-SECRET-${randomBytes(6).toString('hex')}`;
  let sshd: Sshd | undefined;
  let user: TestUser;
  let key: KeyPair;
  let base: string;
  let fx: SourceFixture;
  let outside: string;
  let dests = 0;

  before(async () => {
    if (!isRoot()) return;
    base = await mkdtemp(join(tmpdir(), 'baton-gate-sshd-'));
    await chmod(base, 0o755);
    sshd = await startSshd({ dir: base });
    user = await ensureUser('bzAgate');
    key = await makeKeyPair(join(base, 'keys'), 'stolen');
    fx = await writeSourceFixture(join(base, 'source'), { user: user.name });
    // Readable by the stream user, outside the handover: what a link-following pull would hand out.
    outside = join(base, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret.txt'), `${SECRET}\n`, { mode: 0o644 });
    await writeGeneration(outside, G3, { files: { 'stolen.txt': `${SECRET}\n` } });
    await writeGeneration(fx.dataHandover, G4, {
      files: {
        'ok.txt': 'fine\n',
        etclink: { symlink: '/etc' },
        secret: { symlink: join(outside, 'secret.txt') },
        authkeys: { symlink: join(user.home, '.ssh', 'authorized_keys') },
        up: { symlink: '../../../../..' },
      },
    });
    // Generation names that are symlinks: to /etc, and to a complete generation outside.
    await symlink('/etc', join(fx.dataHandover, G5));
    await symlink(join(outside, G3), join(fx.dataHandover, G3));
    await runProcess(['chown', '-R', '-h', `${user.uid}:${user.gid}`, fx.root], { timeoutMs: 30_000 });
  });
  after(async () => {
    await sshd?.stop();
    if (base !== undefined) await rm(base, { recursive: true, force: true });
  });

  async function freshDest(): Promise<string> {
    const d = join(base, 'received', `d${++dests}`);
    await mkdir(d, { recursive: true });
    return d;
  }

  /** Regular files under `dir` holding the secret, /etc's content or the stream user's authorized_keys. */
  async function leaks(dir: string, authorizedKey: string): Promise<string[]> {
    const found: string[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) found.push(...(await leaks(path, authorizedKey)));
      else if (entry.isFile()) {
        const text = await readFile(path, 'utf8');
        if (text.includes(SECRET) || text.includes('root:x:0:0') || text.includes(authorizedKey)) {
          found.push(path);
        }
      }
    }
    return found;
  }

  for (const rsync of availableRsyncs()) {
    test(`rsync ${rsync.version}: link-following options, paths outside and symlinked generations -> refused, nothing outside arrives; baton's pull works`, async (t) => {
      if (skipUnlessRoot(t)) return;
      assert.ok(sshd);
      // The gate side uses the rsync under test: sshd runs the forced command with this PATH.
      const forced = `env PATH=${pathWith(rsync.binDir, '/usr/bin:/bin')} ${process.execPath} ${BATON_MAIN} gate data --config ${fx.configFile}`;
      const pub = key.publicKey.trim();
      await writeAuthorizedKeys(user, [`restrict,command="${forced}" ${pub}`]);
      const rsh = ['ssh', ...sshClientArgs(sshd, key.privateKey), '-o', 'ControlMaster=no'].join(' ');
      const remote = `${user.name}@127.0.0.1`;
      const client = (args: readonly string[]) =>
        runProcess([rsync.bin, '-e', rsh, ...args], {
          timeoutMs: 60_000,
          env: { ...process.env, PATH: pathWith(rsync.binDir) },
        });
      const list = join(base, 'files-from.txt');
      await writeFile(list, 'tree/etclink/passwd\ntree/secret\n');
      const logTarget = join(base, `bzA-log-${rsync.version}`);

      const attacks: Array<[string, string[]]> = [
        ['--copy-unsafe-links', ['-r', '--copy-unsafe-links', `${remote}:${G4}/tree/`]],
        ['-L', ['-rL', `${remote}:${G4}/tree/`]],
        ['--copy-links', ['-r', '--copy-links', `${remote}:${G4}/`]],
        ['-k', ['-rk', `${remote}:${G4}/tree/`]],
        ['--copy-dirlinks', ['-r', '--copy-dirlinks', `${remote}:${G4}/`]],
        ['-K', ['-rK', `${remote}:${G4}/tree/`]],
        ["-L with baton's own options", [...PULL, '-L', `${remote}:${G4}/`]],
        ['--copy-unsafe-links via -M', [...PULL, '-M--copy-unsafe-links', `${remote}:${G4}/`]],
        ['--rsync-path with an option', [...PULL, '--rsync-path=rsync --copy-links', `${remote}:${G4}/`]],
        ['--files-from (local list)', ['-r', `--files-from=${list}`, `${remote}:${G4}/`]],
        ['--files-from (remote file)', ['-r', '--files-from=:/etc/passwd', `${remote}:/`]],
        ['--log-file via -M', [...PULL, `-M--log-file=${logTarget}`, `${remote}:${G4}/`]],
        ['-s (arguments over the protocol)', ['-rs', `${remote}:${G4}/tree/etclink/`]],
        ['a path through a symlinked dir', [...PULL, `${remote}:${G4}/tree/etclink/`]],
        ['a symlink named directly', ['-rL', `${remote}:${G4}/tree/secret`]],
        ['..', [...PULL, `${remote}:..`]],
        ['../', [...PULL, `${remote}:../`]],
        ['id/../..', [...PULL, `${remote}:${G4}/../../`]],
        ['an absolute path', [...PULL, `${remote}:/etc/`]],
        ['the whole handover', [...PULL, `${remote}:`]],
        ['a generation symlinked to /etc', [...PULL, `${remote}:${G5}/`]],
        ['a generation symlinked outside', [...PULL, `${remote}:${G3}/`]],
        ['--remove-source-files', [...PULL, '--remove-source-files', `${remote}:${G4}/`]],
      ];
      const authorizedKey = pub.split(' ')[1] ?? pub;
      for (const [what, args] of attacks) {
        const d = await freshDest();
        const r = await client([...args, `${d}/`]);
        assert.deepEqual(await leaks(d, authorizedKey), [], `${what}: nothing from outside the handover`);
        assert.notEqual(r.code, 0, `${what} must fail: ${r.stderr}`);
        assert.match(r.stderr, /baton gate: refused: /, `${what}: ${r.stderr}`);
      }
      assert.equal(existsSync(logTarget), false, 'no log file written for the caller');
      assert.deepEqual(await listing(fx.dataHandover), [G3, G4, G5], 'the handover is as it was');
      assert.ok(existsSync(join(fx.dataHandover, G4, 'tree', 'ok.txt')), 'no source file removed');

      // baton's own pull (exactly its argv) still works, links arrive as links.
      const incoming = join(base, 'received', `incoming-${rsync.version}`);
      await mkdir(join(incoming, G4), { recursive: true });
      const [, ...own] = pullArgv({
        transport: {
          rsh: rsh.split(' '),
          remote,
          describe: 'stolen-key test',
          run: () => Promise.reject(new Error('not used')),
          dialogue: () => {
            throw new Error('not used');
          },
          close: () => Promise.resolve(),
        },
        id: G4,
        incoming,
        linkDest: undefined,
        ioTimeoutMs: 30_000,
      });
      const r = await runProcess([rsync.bin, ...own], {
        timeoutMs: 60_000,
        env: { ...process.env, PATH: pathWith(rsync.binDir) },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await listing(join(incoming, G4)), ['SHA256SUMS', 'manifest', 'meta.json', 'tree']);
      for (const link of ['etclink', 'secret', 'authkeys', 'up']) {
        assert.ok((await lstat(join(incoming, G4, 'tree', link))).isSymbolicLink(), `${link} is a link`);
      }
      assert.deepEqual(await leaks(join(base, 'received'), authorizedKey), []);
      // Each refusal reached syslog's stand-in: the gate's JSON line on the caller's stderr is checked above.
    });
  }
});
