/**
 * Issue 10, holes 3 and 8, over a real sshd with restricted users and the real gate: a hostile source's
 * handover has a lying SHA256SUMS (wrong hash, a `../../etc/passwd` line, a symlink to /dev/zero),
 * extra top-level entries (a 300 MB sparse file, a directory, a symlink), a root-owned setuid file and
 * world-writable directories. The sink publishes exactly tree/, manifest, meta.json and a SHA256SUMS
 * that matches the manifest, never a setuid bit or a source-chosen owner; store directories are 0750;
 * `baton verify` checks the same on a published generation; restore as root puts owner and mode back.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  appendFile,
  chmod,
  lchown,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunResult } from '../../src/adapters/run.js';
import { runBaton, show } from '../helpers/cli.js';
import { pullJson, startGateE2e, type E2e, type GateFixture } from '../helpers/e2e.js';
import { sha256, type GenerationOptions, type WrittenGeneration } from '../helpers/gate-fixtures.js';
import { generationIds as names } from '../helpers/source-setup.js';
import { type SmtpSink } from '../helpers/smtp.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('hostile-store', 'creates users, runs sshd');

const SOURCE = 'bzcevil';
let e: E2e;
let fx: GateFixture;
let root: string;
let smtp: SmtpSink;
let sinkConfig: string;
let H: GateFixture['H'];

async function stage(opts: GenerationOptions = {}, after?: (dir: string) => Promise<void>) {
  const g = await fx.stage(opts);
  await after?.(g.dir);
  return g;
}

async function pull(): Promise<{ r: RunResult; error: string; pulled: string[] }> {
  const { r, o } = await pullJson(sinkConfig, { timeoutMs: 90_000 });
  return { r, error: o.error ?? '', pulled: o.pulled };
}

/** Not published, not acked, quarantined, one alert mail naming the problem. */
async function expectRejected(g: WrittenGeneration, problem: RegExp): Promise<void> {
  try {
    const mails = smtp.messages.length;
    const { r, error } = await pull();
    assert.equal(r.code, 1, show(r));
    assert.match(error, problem, show(r));
    assert.equal((await names(H.sinkData)).includes(g.id), false, 'not published');
    // not acked: a source fault is set aside on the source (`reject`), never deleted or moved to its store
    const rejected = join(H.data, '.rejected', g.id);
    assert.deepEqual(await names(H.data), [], 'no longer pending');
    assert.ok(existsSync(join(rejected, 'manifest')), "kept in the handover's .rejected/");
    const q = await readdir(join(H.sinkData, '.quarantine'));
    assert.ok(
      q.some((n) => n.startsWith(g.id)),
      'quarantined',
    );
    const mail = (await smtp.waitFor(mails + 1)).at(-1);
    assert.match(mail?.subject ?? '', /pull of data FAILED/);
    assert.match(mail?.text ?? '', problem);
  } finally {
    await rm(g.dir, { recursive: true, force: true });
    await rm(join(H.data, '.rejected', g.id), { recursive: true, force: true });
  }
}

async function expectPublished(g: WrittenGeneration): Promise<string> {
  try {
    const { r, pulled } = await pull();
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(pulled, [g.id]);
    assert.deepEqual(await names(H.data), [], 'acked');
    return join(H.sinkData, g.id);
  } finally {
    await rm(g.dir, { recursive: true, force: true });
  }
}

const modeOf = async (p: string) => (await lstat(p)).mode & 0o7777;

before(async () => {
  if (NEEDS_ROOT) return;
  ({ e, fx, sinkConfig } = await startGateE2e({
    prefix: 'baton-bzc-store-',
    user: 'bzCData',
    source: SOURCE,
    baseDay: Date.UTC(2026, 0, 2),
    smtp: true,
    sink: { verify: true, limits: 'maxBytes: 100000000' },
  }));
  ({ root, smtp } = e);
  H = fx.H;
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

// ---------------------------------------------------------------------------------------------------------
// hole 3: the top level of a generation

test('SHA256SUMS with a wrong hash -> not published, quarantined, alert', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({
    tamper: async (d) => {
      const sums = join(d, 'SHA256SUMS');
      const text = await readFile(sums, 'utf8');
      await writeFile(sums, text.replace(/^[0-9a-f]{64}/, sha256('not the content')));
    },
  });
  await expectRejected(g, /sums: SHA256SUMS: line 1 differs from the manifest/);
});

test('SHA256SUMS with a ../../etc/passwd line -> not published, alert', { skip: NEEDS_ROOT }, async () => {
  const g = await stage({
    tamper: async (d) => appendFile(join(d, 'SHA256SUMS'), `${sha256('x')}  ../../etc/passwd\n`),
  });
  await expectRejected(g, /sums: SHA256SUMS: more than the \d+ line\(s\)/);
});

test(
  'SHA256SUMS as a symlink to /dev/zero -> not published, never read, alert',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      tamper: async (d) => {
        await rm(join(d, 'SHA256SUMS'));
        await symlink('/dev/zero', join(d, 'SHA256SUMS'));
      },
    });
    await expectRejected(g, /sums: SHA256SUMS: not a regular file: a symlink/);
  },
);

test(
  'extra top-level entries (a 300 MB sparse file, a directory, a symlink) are not transferred nor published',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      tamper: async (d) => {
        await writeFile(join(d, 'big.bin'), '');
        await truncate(join(d, 'big.bin'), 300 * 1024 * 1024);
        await mkdir(join(d, 'extra-dir'));
        await writeFile(join(d, 'extra-dir', 'x'), 'x');
        await symlink('/etc', join(d, 'etc'));
      },
    });
    const dir = await expectPublished(g);
    assert.deepEqual((await readdir(dir)).sort(), ['SHA256SUMS', 'manifest', 'meta.json', 'tree']);
    // nothing of it reached the sink: not in .incoming, not in .quarantine
    const du = async (p: string): Promise<number> => {
      const st = await lstat(p);
      if (!st.isDirectory()) return st.blocks * 512;
      let n = 0;
      for (const name of await readdir(p)) n += await du(join(p, name));
      return n;
    };
    assert.ok((await du(H.sinkStore)) < 10 * 1024 * 1024, 'the 300 MB file took no space on the sink');
    const v = await runBaton(['verify', dir, '--deep']);
    assert.equal(v.code, 0, show(v));
  },
);

test(
  'baton verify --deep refuses a published generation with a planted top-level entry or a bad SHA256SUMS',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage();
    const dir = await expectPublished(g);
    const ok = await runBaton(['verify', dir, '--deep']);
    assert.equal(ok.code, 0, show(ok));

    await writeFile(join(dir, 'notes.txt'), 'planted');
    const extra = await runBaton(['verify', dir, '--deep']);
    assert.equal(extra.code, 1, show(extra));
    assert.match(extra.stdout, /extra: notes\.txt: at the top of the generation/);
    await rm(join(dir, 'notes.txt'));

    const sums = join(dir, 'SHA256SUMS');
    const saved = join(root, 'sums.saved');
    await rename(sums, saved);
    await symlink('/dev/zero', sums);
    const zero = await runBaton(['verify', dir, '--deep'], { timeoutMs: 30_000 });
    assert.equal(zero.timedOut, false, 'never reads /dev/zero');
    assert.equal(zero.code, 1, show(zero));
    assert.match(zero.stdout, /sums: SHA256SUMS: not a regular file: a symlink/);
    await rm(sums);
    await writeFile(sums, `${sha256('x')}  ../../etc/passwd\n`);
    const passwd = await runBaton(['verify', dir]);
    assert.equal(passwd.code, 1, show(passwd));
    assert.match(passwd.stdout, /sums: SHA256SUMS: line 1 differs/);
    await rm(sums);
    await rename(saved, sums);
    const again = await runBaton(['verify', dir, '--deep']);
    assert.equal(again.code, 0, show(again));
  },
);

// ---------------------------------------------------------------------------------------------------------
// hole 8: setuid bits, owners, store modes

test(
  'a root-owned 4755 file arrives without setuid and owned by the sink; store dirs 0750; restore as root puts owner and mode back',
  { skip: NEEDS_ROOT },
  async () => {
    const sgidUid = 4242;
    const g = await stage(
      {
        files: { 'bin/suid': '#!/bin/sh\nid\n', 'bin/sgid': 'x\n', 'shared/f': 'f\n' },
        // the manifest tells the truth: 4755 root, 2755 uid 4242, a 1777 directory
        manifest: (m) =>
          m
            .split('\n')
            .map((l) =>
              l.endsWith(' bin/suid')
                ? l.replace(/^f \d+ \d+ \d+/, 'f 4755 0 0')
                : l.endsWith(' bin/sgid')
                  ? l.replace(/^f \d+ \d+ \d+/, `f 2755 ${sgidUid} ${sgidUid}`)
                  : l.endsWith(' shared')
                    ? l.replace(/^d \d+/, 'd 1777')
                    : l,
            )
            .join('\n'),
      },
      async (d) => {
        await lchown(join(d, 'tree/bin/suid'), 0, 0);
        await chmod(join(d, 'tree/bin/suid'), 0o4755);
        await lchown(join(d, 'tree/bin/sgid'), sgidUid, sgidUid);
        await chmod(join(d, 'tree/bin/sgid'), 0o2755);
        await chmod(join(d, 'tree/shared'), 0o1777);
        await chmod(join(d, 'tree'), 0o777);
        await chmod(d, 0o777);
      },
    );
    const dir = await expectPublished(g);
    const suid = await stat(join(dir, 'tree/bin/suid'));
    assert.equal(suid.mode & 0o7777, 0o555, 'no setuid, no write bit');
    assert.equal(suid.uid, process.getuid?.(), 'owned by the sink, not chosen by the source');
    const sgid = await stat(join(dir, 'tree/bin/sgid'));
    assert.equal(sgid.mode & 0o7777, 0o555);
    assert.notEqual(sgid.uid, sgidUid);
    assert.notEqual(sgid.gid, sgidUid);
    assert.equal(await modeOf(join(dir, 'tree/shared')), 0o755, 'no sticky bit, not world-writable');
    assert.equal(await modeOf(dir), 0o750, 'generation dir 0750 whatever the source sent');
    assert.equal(await modeOf(join(dir, 'tree')), 0o750);
    for (const f of ['manifest', 'meta.json', 'SHA256SUMS'])
      assert.equal((await modeOf(join(dir, f))) & 0o222, 0, `${f} not writable`);

    const v = await runBaton(['verify', dir, '--deep']);
    assert.equal(v.code, 0, show(v));

    const to = join(root, 'restored');
    const r = await runBaton(['restore', dir, '--to', to]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^2 setuid\/setgid entries given back their bits from the manifest/m);
    const back = await stat(join(to, 'bin/suid'));
    assert.equal(back.mode & 0o7777, 0o4755);
    assert.equal(back.uid, 0);
    const backG = await stat(join(to, 'bin/sgid'));
    assert.equal(backG.mode & 0o7777, 0o2755);
    assert.equal(backG.uid, sgidUid);
    assert.equal(await modeOf(join(to, 'shared')), 0o1777);

    // a setuid bit set in the store afterwards is found by verify
    await chmod(join(dir, 'tree/bin/suid'), 0o4555);
    const bad = await runBaton(['verify', dir]);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stdout, /mode: bin\/suid: mode 4555 in tree\/: a store holds no setuid\/setgid bit/);
    await chmod(join(dir, 'tree/bin/suid'), 0o555);
  },
);
