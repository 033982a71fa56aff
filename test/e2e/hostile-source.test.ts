/**
 * A sink pulling from a HOSTILE source (issue "Faults and hostile input", cases 14–17 and 28): the real
 * gate behind a real sshd serves hand-crafted generations whose manifests, trees and names lie, and a
 * caller holding the stream key abuses the gate. The sink must reject what is wrong without publishing,
 * acking or touching anything outside its store, and store what is merely odd exactly as it is. A caller
 * abusing the gate over ssh (case 28) is in hostile-source-ssh.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  chmod,
  lchown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { show } from '../helpers/cli.js';
import {
  chownTree,
  gateCommand,
  makeGateFixture,
  pullJson,
  startE2e,
  writeSinkConfig,
  type E2e,
  type GateFixture,
} from '../helpers/e2e.js';
import { evilMarker } from '../helpers/evil-marker.js';
import {
  sha256,
  sha256File,
  writeGeneration,
  type GenerationOptions,
  type TreeEntry,
  type WrittenGeneration,
} from '../helpers/gate-fixtures.js';
import { generationIds as ids } from '../helpers/source-setup.js';
import { type SmtpSink } from '../helpers/smtp.js';
import { sshClientArgs, type Sshd } from '../helpers/sshd.js';
import { type KeyPair, type TestUser, needsRootOrSkipFile, writeAuthorizedKeys } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('hostile-source', 'creates users, runs sshd');

const SOURCE = 'evil';
const MAX_FILES = 40;

let e: E2e;
let fx: GateFixture;
let root: string;
let sshd: Sshd;
let smtp: SmtpSink;
let dataUser: TestUser;
let dataKey: KeyPair;
let sinkConfig: string;
let H: GateFixture['H'];
/** /etc/shadow's first line: must never show up in anything the sink wrote or said. */
let shadowHead = '';
/** A FIFO on the sink, outside its store: opening it for reading blocks until a writer comes. */
let fifo = '';

/** A path nothing may ever create: hostile manifests and names aim at it. */
const marker = evilMarker(() => [dataUser.home, root, H.sinkStore, H.sinkData, H.sinkState, H.data]);
const EVIL = marker.name;
const EVIL_ABS = marker.abs;

/** A new generation id, later than every one before (the sink pulls oldest first). */
const nextId = () => fx.nextId();

/** Writes a generation into the data handover, owned by the stream user like the real thing. */
const stage = (opts: GenerationOptions = {}, id = nextId()): Promise<WrittenGeneration> => fx.stage(opts, id);

async function pull(timeoutMs = 60_000): Promise<{ r: RunResult; error: string; pulled: string[] }> {
  const { r, o } = await pullJson(sinkConfig, { timeoutMs });
  return { r, error: o.error ?? '', pulled: o.pulled };
}

/** Everything about the published generations that a hostile pull must not change. */
async function storeSnapshot(): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const st = await lstat(join(dir, name));
      lines.push(`${rel}/${name} ${st.mode} ${st.size} ${st.ino} ${st.mtimeMs}`);
      if (st.isDirectory()) await walk(join(dir, name), `${rel}/${name}`);
    }
  };
  for (const id of await ids(H.sinkData)) await walk(join(H.sinkData, id), id);
  return lines.join('\n');
}

/** Places where a shell that ran a hostile name (`$(touch baton-evil-…)`) would have left its marker. */
const assertNoMarker = () => marker.assertNone();

/**
 * The pull failed for `g` with `problem`: exit 1, one `baton: …` line, not published, not acked (still in
 * the handover, unchanged), the published generations unchanged, nothing created outside the store.
 * Then the generation is removed from the handover so the next case is pulled alone.
 */
async function expectRejected(g: WrittenGeneration, problem: RegExp, timeoutMs?: number): Promise<string> {
  try {
    const before = await storeSnapshot();
    const { r, error } = await pull(timeoutMs);
    assert.equal(r.code, 1, show(r));
    assert.match(error, problem, show(r));
    const last = r.stderr.trim().split('\n').at(-1) ?? '';
    assert.match(last, /^baton: sink pull data: 1 of 1 source\(s\) failed: evil: /);
    assert.equal((await ids(H.sinkData)).includes(g.id), false, 'not published');
    // not acked: still pending, or (quarantined) set aside by the sink's reject in .rejected/
    const pending = await ids(H.data);
    const rejected = await ids(join(H.data, '.rejected'));
    assert.deepEqual(
      [...pending, ...rejected],
      [g.id],
      'not acked: still pending in the handover or kept in .rejected',
    );
    const kept = pending.includes(g.id) ? g.dir : join(H.data, '.rejected', g.id);
    assert.equal((await ids(H.store)).includes(g.id), false, 'not moved into the source store');
    if (g.manifestSha256 !== '' && (await lstat(join(kept, 'manifest'))).isFile()) {
      assert.equal(await sha256File(join(kept, 'manifest')), g.manifestSha256, 'handover untouched');
    }
    assert.equal(await storeSnapshot(), before, 'published generations unchanged');
    assertNoMarker();
    return `${r.stdout}\n${r.stderr}`;
  } finally {
    // The next case is pulled alone.
    await rm(g.dir, { recursive: true, force: true });
    await rm(join(H.data, '.rejected', g.id), { recursive: true, force: true });
  }
}

/** The pull published, verified and acked `g`. */
async function expectAccepted(g: WrittenGeneration): Promise<string> {
  try {
    const { r, pulled } = await pull();
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(pulled, [g.id]);
    assert.ok((await ids(H.sinkData)).includes(g.id), 'published');
    assert.deepEqual(await ids(H.data), [], 'acked: gone from the handover');
    assert.ok((await ids(H.store)).includes(g.id), 'acked: moved into the source store');
    assertNoMarker();
    return join(H.sinkData, g.id);
  } finally {
    // a failed case must not stay pending in front of the next one
    await rm(g.dir, { recursive: true, force: true });
  }
}

// A file entry line for hand-written manifests (content "evil").
const EVIL_SHA = sha256('evil');
const fileLine = (pathField: string) => `f 0644 0 0 root root 0.000000000 4 ${EVIL_SHA} ${pathField}`;
const appendLine = (line: string) => (generated: string) => `${generated}${line}\n`;

before(async () => {
  if (NEEDS_ROOT) return;
  e = await startE2e({
    prefix: 'baton-hostile-',
    users: { data: 'batonEvilData', logs: 'batonEvilLogs' },
    keys: ['data', 'logs'],
    smtp: true,
  });
  ({ root, sshd, smtp } = e);
  dataUser = e.user('data');
  dataKey = e.key('data');
  shadowHead = (await readFile('/etc/shadow', 'utf8')).split('\n')[0]?.slice(0, 24) ?? '';
  assert.ok(shadowHead.length >= 6);
  fifo = join(root, 'sink-side-fifo');
  const mk = await runProcess(['mkfifo', fifo], { timeoutMs: 10_000 });
  assert.equal(mk.code, 0, mk.stderr);
  fx = await makeGateFixture(e, { source: SOURCE, baseDay: Date.UTC(2026, 0, 1), logs: true });
  H = fx.H;
  sinkConfig = await writeSinkConfig(join(root, 'sink.yaml'), {
    store: H.sinkStore,
    stateDir: H.sinkState,
    sshd,
    verify: true,
    limits: `maxFiles: ${MAX_FILES}`,
    sources: [
      {
        name: SOURCE,
        streams: { data: { user: 'batonEvilData', identity: dataKey.privateKey, generations: 50 } },
      },
    ],
    mailUrl: smtp.url,
  });
  // A verified generation already in the sink store: no hostile pull may change it.
  const g = await stage();
  await expectAccepted(g);
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
  await marker.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// the manifest lies (issue case 15, 16)

test('a malformed manifest line -> rejected, not published, not acked', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ manifest: appendLine('this is not a manifest line') });
  await expectRejected(g, /expected 10 or 11 fields/);
});

test('a truncated manifest (no trailing newline) -> rejected', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ manifest: (m) => m.slice(0, -10) });
  await expectRejected(g, /does not end with a newline/);
});

test('a manifest with more entries than limits.maxFiles -> rejected', { skip: NEEDS_ROOT }, async () => {
  const files: Record<string, TreeEntry> = {};
  for (let i = 0; i < MAX_FILES + 5; i++) files[`f${String(i).padStart(3, '0')}`] = `${i}\n`;
  const g = await stage({ files });
  await expectRejected(g, new RegExp(`more than ${MAX_FILES} entries`));
});

test('a manifest listing a path twice -> rejected', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({
    manifest: (m) => {
      const line = m.split('\n').find((l) => l.endsWith(' README.txt'));
      assert.ok(line);
      return m.replace(`${line}\n`, `${line}\n${line}\n`);
    },
  });
  await expectRejected(g, /duplicate path/);
});

for (const [name, field, problem] of [
  ['../x', `../../../../../../../..${EVIL_ABS}`, /"\." or "\.\." in path/],
  ['%2E%2E/x (escaped ..)', `%2E%2E/%2e%2e/%2E%2E/%2E%2E/%2E%2E/%2E%2E${EVIL_ABS}`, /"\." or "\.\." in path/],
  ['/etc/x (escaped %2Fetc%2Fx)', EVIL_ABS.replaceAll('/', '%2F'), /absolute path/],
  ['a/../../x', `a/../../../../../../../../..${EVIL_ABS}`, /"\." or "\.\." in path/],
  ['a raw CR in a name', 'bad\rname', /bad path escaping/],
  ['a raw leading "-"', '-rf', /bad path escaping/],
  ['an escaped NUL', 'a%00b', /NUL byte/],
] as const) {
  test(`a manifest path ${name} -> rejected, nothing written outside`, { skip: NEEDS_ROOT }, async () => {
    const g = await stage({ manifest: appendLine(fileLine(field)) });
    await expectRejected(g, problem);
  });
}

test('a raw LF in a manifest name splits the line -> rejected', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ manifest: appendLine(fileLine(`zz\n${EVIL}`)) });
  await expectRejected(g, /expected 10 or 11 fields|not in tree order|parent directory not listed/);
});

// ---------------------------------------------------------------------------------------------------------
// names that only look dangerous: legal, stored byte for byte, never run (issue case 16)

test(
  'names with $(…), backticks, CR/LF, leading "-", % and NFC/NFD twins -> pulled, verified, acked, never run',
  { skip: NEEDS_ROOT },
  async () => {
    const files: Record<string, TreeEntry> = {
      '$(reboot)': 'reboot\n',
      [`$(touch ${EVIL})`]: 'touch\n',
      [`\`touch ${EVIL}\``]: 'backticks\n',
      [`a;touch ${EVIL};b`]: 'semicolons\n',
      [`-rf --delete ${EVIL}`]: 'dash\n',
      '-': 'just a dash\n',
      'line\nbreak': 'lf\n',
      'carriage\rreturn': 'cr\n',
      'back\\slash': 'backslash\n',
      '%2Fetc%2Fx': 'percent\n',
      '..x': 'dots\n',
      '...': 'three dots\n',
      'caf\u00e9.txt': 'NFC\n', // é precomposed
      'cafe\u0301.txt': 'NFD\n', // e + combining acute: looks the same, other bytes
      'dir with space/$(id)': 'nested\n',
    };
    const g = await stage({ files });
    const dir = await expectAccepted(g);
    for (const [name, content] of Object.entries(files)) {
      assert.equal(await readFile(join(dir, 'tree', name), 'utf8'), content, JSON.stringify(name));
    }
    const top = await readdir(join(dir, 'tree'));
    assert.ok(top.includes('caf\u00e9.txt') && top.includes('cafe\u0301.txt'), 'both twins arrived');
    // The sink store restores with plain tools: sha256sum -c copes with every one of these names.
    const check = await runProcess(['sh', '-c', 'cd tree && sha256sum --strict --quiet -c ../SHA256SUMS'], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    assert.equal(check.code, 0, check.stdout + check.stderr);
  },
);

// ---------------------------------------------------------------------------------------------------------
// the tree disagrees with the manifest (issue case 14, 17)

test('a listed file missing from tree/ -> rejected (quarantined)', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ tamper: (d) => rm(join(d, 'tree/db/empty')) });
  const said = await expectRejected(g, /missing: db\/empty/);
  assert.match(said, /quarantined/);
  assert.ok((await readdir(join(H.sinkData, '.quarantine'))).some((n) => n.startsWith(g.id)));
});

test('an extra file not in the manifest -> rejected', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ tamper: (d) => writeFile(join(d, 'tree/db/smuggled'), 'not listed\n') });
  await expectRejected(g, /extra: db\/smuggled/);
});

test('file content that does not match its hash -> rejected', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({ tamper: (d) => writeFile(join(d, 'tree/README.txt'), 'HELLO FROM THE SOURCE\n') });
  await expectRejected(g, /hash: README\.txt/);
});

test(
  'a symlink where the manifest says file -> rejected, its target never read',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      tamper: async (d) => {
        await rm(join(d, 'tree/etc/app.conf'));
        await symlink('/etc/shadow', join(d, 'tree/etc/app.conf'));
      },
    });
    const said = await expectRejected(g, /type: etc\/app\.conf: is l, manifest says f/);
    assert.equal(said.includes(shadowHead), false);
  },
);

test(
  'a symlink to /etc/shadow listed as a symlink -> stored as a symlink, never followed',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      files: { 'keys/shadow': { symlink: '/etc/shadow' }, 'keys/etc': { symlink: '/etc' } },
    });
    const dir = await expectAccepted(g);
    const link = join(dir, 'tree/keys/shadow');
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.equal(await readlink(link), '/etc/shadow');
    assert.ok((await lstat(join(dir, 'tree/keys/etc'))).isSymbolicLink());
    const grep = await runProcess(['grep', '-rlF', '--', shadowHead, H.sinkStore, H.sinkState], {
      timeoutMs: 30_000,
    });
    assert.equal(grep.stdout.trim(), '', 'no copy of /etc/shadow anywhere in the sink store or state');
  },
);

test(
  'a symlinked parent directory (tree/a -> /etc, manifest lists a/passwd) -> rejected, nothing read or written there',
  { skip: NEEDS_ROOT },
  async () => {
    // b/ points at a directory we watch (/etc changes under other tests: users come and go).
    const outside = join(root, 'outside-parent');
    await mkdir(outside);
    await writeFile(join(outside, 'x'), 'outside\n');
    const seen = await lstat(join(outside, 'x'));
    const g = await stage({
      files: { 'a/passwd': 'root:x:0:0::/root:/bin/sh\n', 'b/x': 'evil\n', 'c.txt': 'c\n' },
      tamper: async (d) => {
        await rm(join(d, 'tree/a'), { recursive: true });
        await symlink('/etc', join(d, 'tree/a'));
        await rm(join(d, 'tree/b'), { recursive: true });
        await symlink(outside, join(d, 'tree/b'));
      },
    });
    await expectRejected(g, /type: a: is l, manifest says d/);
    assert.deepEqual(await readdir(outside), ['x']);
    const now = await lstat(join(outside, 'x'));
    assert.equal(now.mtimeMs, seen.mtimeMs);
    assert.equal(now.atimeMs, seen.atimeMs, 'not even read (atime)');
    assert.equal(await readFile(join(outside, 'x'), 'utf8'), 'outside\n');
    const q = (await readdir(join(H.sinkData, '.quarantine'))).find((n) => n.startsWith(g.id));
    assert.ok(q);
    for (const l of ['a', 'b']) {
      assert.ok(
        (await lstat(join(H.sinkData, '.quarantine', q, 'tree', l))).isSymbolicLink(),
        `${l} kept as a link`,
      );
    }
  },
);

test(
  'a symlink left in .incoming by an interrupted pull is replaced, never written through',
  { skip: NEEDS_ROOT },
  async () => {
    const outside = `${EVIL_ABS}-dir`;
    await mkdir(outside, { recursive: true });
    const g = await stage({ files: { 'a/x': 'inside\n', 'b.txt': 'b\n' } });
    const leftover = join(H.sinkData, '.incoming', g.id, 'tree');
    await mkdir(leftover, { recursive: true });
    await symlink(outside, join(leftover, 'a'));
    const dir = await expectAccepted(g);
    assert.deepEqual(await readdir(outside), [], 'nothing written through the symlink');
    assert.ok((await lstat(join(dir, 'tree/a'))).isDirectory());
    assert.equal(await readFile(join(dir, 'tree/a/x'), 'utf8'), 'inside\n');
    await rm(outside, { recursive: true });
  },
);

test(
  'meta.json as a symlink to a FIFO outside the store -> rejected at once, never opened',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      tamper: async (d) => {
        await rm(join(d, 'meta.json'));
        await symlink(fifo, join(d, 'meta.json'));
      },
    });
    // Opening the FIFO would block forever: a hang here is the bug.
    await expectRejected(g, /meta: meta\.json: .*not a regular file/, 30_000);
  },
);

for (const [target, what] of [
  ['/etc/shadow', 'a symlink to /etc/shadow'],
  ['FIFO', 'a symlink to a FIFO'],
] as const) {
  test(
    `a compromised source swaps the manifest for ${what} after list -> rejected at once, nothing leaks`,
    { skip: NEEDS_ROOT },
    async () => {
      // The source's forced command is replaced (a compromised source can do that): it answers the
      // listing (`list`, `list-head` or a `session`, which carry the oldest manifest) honestly, then,
      // when the tree's rsync is asked for, turns the manifest of every pending generation into a
      // symlink before the rsync starts. (Swapping at the rsync request, not after the listing, hits
      // both the one-command-per-session gate and the gate session that stays open during the rsync.)
      const link = target === 'FIFO' ? fifo : target;
      const wrapper = join(root, 'evil-gate.sh');
      const gate = gateCommand('data', fx.sourceConfig);
      await writeFile(
        wrapper,
        [
          '#!/bin/sh',
          'case "$SSH_ORIGINAL_COMMAND" in',
          `  rsync\\ *) for m in '${H.data}'/20*/manifest; do ln -sfn '${link}' "$m"; done ;;`,
          'esac',
          `exec ${gate}`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      await chmod(wrapper, 0o755);
      await writeAuthorizedKeys(dataUser, [`restrict,command="/bin/sh ${wrapper}" ${dataKey.publicKey}`]);
      try {
        const g = await stage();
        const mails = smtp.messages.length;
        // Reading the FIFO would block forever, /etc/shadow would land in the error: both are the bug.
        // with list-head the manifest came inline before the swap: the tree rsync brings the symlink,
        // and verify finds the manifest changed and not a regular file
        const said = await expectRejected(g, /manifest:? not a regular file/, 30_000);
        assert.equal(said.includes(shadowHead), false, 'no /etc/shadow content in the output');
        const lastRun = await readFile(join(H.sinkState, 'runs', `${SOURCE}-data.json`), 'utf8');
        assert.equal(lastRun.includes(shadowHead), false, 'none in the run record');
        const mail = (await smtp.waitFor(mails + 1)).at(-1);
        assert.ok(mail);
        assert.match(mail.subject, /pull of data FAILED/);
        assert.equal(mail.text.includes(shadowHead), false, 'none in the alert mail');
      } finally {
        await writeAuthorizedKeys(dataUser, [fx.gateLine('data')]);
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// hostile generation names in the handover (issue case 16)

test(
  'hostile generation names in the handover are not listed and never pulled',
  { skip: NEEDS_ROOT },
  async () => {
    const outsideGen = join(root, 'outside');
    await mkdir(outsideGen);
    const realId = nextId();
    const evil = await writeGeneration(outsideGen, realId, { source: SOURCE });
    const names = [
      '2026-13-45T999999Z',
      `${nextId()}\n`,
      `x\n${nextId()}`,
      `${nextId()} `,
      `.${nextId()}.partial`,
    ];
    for (const name of names) {
      const g = await writeGeneration(H.data, name, { source: SOURCE });
      await chownTree(g.dir, dataUser);
    }
    // `../x`: a valid id that is a symlink to a complete generation outside the handover
    await symlink(join('..', '..', 'outside', realId), join(H.data, realId));
    await lchown(join(H.data, realId), dataUser.uid, dataUser.gid);
    const before = await storeSnapshot();
    const handoverBefore = (await readdir(H.data)).sort();

    const listed = await runProcess(
      ['ssh', ...sshClientArgs(sshd, dataKey.privateKey), 'batonEvilData@127.0.0.1', 'list'],
      { timeoutMs: 30_000, captureStdout: true },
    );
    assert.equal(listed.code, 0, listed.stderr);
    const listing = z
      .object({ generations: z.array(z.object({ id: z.string() })) })
      .parse(JSON.parse(listed.stdout));
    assert.deepEqual(listing.generations, [], listed.stdout);

    const { r, pulled } = await pull();
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(pulled, []);
    assert.equal(await storeSnapshot(), before, 'sink store unchanged');
    assert.deepEqual(await readdir(join(H.sinkData, '.incoming')).catch(() => []), [], 'nothing pulled in');
    assert.deepEqual((await readdir(H.data)).sort(), handoverBefore, 'nothing acked or moved');
    assert.ok(existsSync(join(evil.dir, 'manifest')), 'the generation outside the handover untouched');
    for (const name of await readdir(H.data)) await rm(join(H.data, name), { recursive: true, force: true });
  },
);
