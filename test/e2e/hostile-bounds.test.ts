/**
 * Issue 10, holes 4, 5, 7 and 9: a hostile or broken source cannot exhaust the sink's memory or disk,
 * plant an id from the future, or hold a pull open for ever. A real sshd, a restricted stream user
 * whose forced command is the real gate, or a wrapper that replaces the gate's answers (a compromised
 * source can do that), real rsync and real SMTP. Each failure must be one line, an alert, exit 1 and
 * the lock released.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { runBaton, show } from '../helpers/cli.js';
import { writeGeneration, type GenerationOptions, type WrittenGeneration } from '../helpers/gate-fixtures.js';
import {
  chownTree as chownTreeTo,
  gateCommand,
  pullJson,
  startGateE2e,
  type E2e,
  type GateE2e,
  type GateFixture,
} from '../helpers/e2e.js';
import { generationIds as ids } from '../helpers/source-setup.js';
import { type SmtpSink } from '../helpers/smtp.js';
import { writeAuthorizedKeys, needsRootOrSkipFile, type KeyPair, type TestUser } from '../helpers/users.js';
import type { RunResult } from '../../src/adapters/run.js';

const NEEDS_ROOT = needsRootOrSkipFile('hostile-bounds', 'creates users, runs sshd');

const SOURCE = 'bounded';
const USER = 'bzDData';
let e: E2e;
let fx: GateFixture;
let root: string;
let smtp: SmtpSink;
let user: TestUser;
let key: KeyPair;
let sourceConfig: string;
let markers: string;
let H: GateFixture['H'];
let writeSink: GateE2e['writeSink'];

const gate = () => gateCommand('data', sourceConfig);
const gateLine = () => fx.gateLine();
const nextId = () => fx.nextId();
const chownTree = (path: string) => chownTreeTo(path, user);
const stage = (opts: GenerationOptions = {}, id = nextId()): Promise<WrittenGeneration> => fx.stage(opts, id);

/** Writes the sink config with these extra `limits:` and `alerts:` keys; returns its path. */
function sinkConfig(limits = '', alerts = ''): Promise<string> {
  return writeSink(join(root, `sink-${randomName()}.yaml`), {
    timeout: '10m',
    limits: `maxFiles: 100${limits ? `, ${limits}` : ''}`,
    ...(alerts ? { alerts } : {}),
  });
}

let counter = 0;
const randomName = () => `${process.pid}-${counter++}`;

async function pull(
  config: string,
  timeoutMs = 90_000,
): Promise<{ r: RunResult; error: string; pulled: string[] }> {
  const { r, o } = await pullJson(config, { timeoutMs });
  return { r, error: o.error ?? '', pulled: o.pulled };
}

/**
 * The pull failed with `problem`: exit 1, one `baton: …` line naming it, an alert mail naming it,
 * the lock released. Returns the run's result.
 */
async function expectFailure(config: string, problem: RegExp, timeoutMs?: number): Promise<RunResult> {
  const mails = smtp.messages.length;
  const { r, error } = await pull(config, timeoutMs);
  assert.equal(r.code, 1, show(r));
  assert.match(error, problem, show(r));
  const last = r.stderr.trim().split('\n').at(-1) ?? '';
  // one line: the first line of the error, whatever detail the log and the mail carry
  assert.match(last, new RegExp(`^baton: sink pull data: 1 of 1 source\\(s\\) failed: ${SOURCE}: `));
  assert.ok(last.includes(error.split('\n')[0] ?? ''), show(r));
  const mail = (await smtp.waitFor(mails + 1, 30_000)).at(-1);
  assert.ok(mail);
  assert.match(mail.subject, /pull of data FAILED/);
  assert.match(mail.text, problem);
  assert.equal(existsSync(join(H.sinkState, 'locks', `${SOURCE}-data.lock`)), false, 'lock released');
  return r;
}

/** Replaces the gate with a wrapper: `cases` is shell `case` arms on $SSH_ORIGINAL_COMMAND; else the gate. */
/** A wrapper case that plays a gate of an older baton: it refuses `session`, so every command has its own session. */
const NO_SESSION = `session) echo 'baton gate: refused: not an allowed command (allowed: list, list-head, ack ID SHA256)' >&2; exit 1 ;;`;

async function withWrapper(cases: string, fn: () => Promise<void>): Promise<void> {
  const wrapper = join(root, `wrapper-${randomName()}.sh`);
  await writeFile(
    wrapper,
    ['#!/bin/sh', 'case "$SSH_ORIGINAL_COMMAND" in', cases, `*) exec ${gate()} ;;`, 'esac', ''].join('\n'),
    { mode: 0o755 },
  );
  await chmod(wrapper, 0o755);
  await writeAuthorizedKeys(user, [`restrict,command="/bin/sh ${wrapper}" ${key.publicKey}`]);
  try {
    await fn();
  } finally {
    await writeAuthorizedKeys(user, [gateLine()]);
  }
}

async function clearHandover(): Promise<void> {
  for (const n of await readdir(H.data)) await rm(join(H.data, n), { recursive: true, force: true });
}

before(async () => {
  if (NEEDS_ROOT) return;
  ({ e, fx, writeSink } = await startGateE2e({
    prefix: 'baton-bounds-',
    user: USER,
    source: SOURCE,
    baseDay: Date.UTC(2026, 0, 1),
    smtp: true,
    generations: 3,
  }));
  ({ root, smtp } = e);
  user = e.user('data');
  key = e.key('data');
  ({ H, sourceConfig } = fx);
  markers = join(root, 'markers');
  await mkdir(markers, { mode: 0o777 });
  await chmod(markers, 0o777);
  // a verified generation already in the sink store
  await stage();
  const { r } = await pull(await sinkConfig());
  assert.equal(r.code, 0, show(r));
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

// ---------------------------------------------------------------------------------------------------------
// hole 4: every reply is capped while it is read

test(
  'a 200 MB `list` answer -> read only up to 13 MiB (a listing and an inline manifest), one line, alert, lock released',
  { skip: NEEDS_ROOT },
  async () => {
    const done = join(markers, 'list-sent-whole');
    await withWrapper(
      `${NO_SESSION}\nlist|list-head) head -c 200000000 /dev/zero && touch '${done}'; exit 0 ;;`,
      async () => {
        await expectFailure(
          await sinkConfig(),
          /list over .*: the reply is output larger than 13 MiB, stopped reading/,
        );
      },
    );
    // the sink stopped reading and ended the session: the gate never got to write it all
    assert.equal(existsSync(done), false, 'the whole 200 MB answer was read');
  },
);

test(
  "an older gate's plain `list` (it refuses `list-head`) answering 200 MB -> read only up to the 4 MiB listing cap, one line, alert",
  { skip: NEEDS_ROOT },
  async () => {
    const done = join(markers, 'plain-list-sent-whole');
    await withWrapper(
      [
        NO_SESSION,
        `list-head) echo 'baton gate: refused: not an allowed command (allowed: list, ack ID SHA256)' >&2; exit 1 ;;`,
        `list) head -c 200000000 /dev/zero && touch '${done}'; exit 0 ;;`,
      ].join('\n'),
      async () => {
        await expectFailure(
          await sinkConfig(),
          /list over .*: the reply is output larger than 4 MiB, stopped reading/,
        );
      },
    );
    assert.equal(existsSync(done), false, 'the whole 200 MB answer was read');
  },
);

test(
  'a 200 MB `ack` answer -> read only up to 64 KiB, one line, alert, lock released, not acked',
  { skip: NEEDS_ROOT },
  async () => {
    const done = join(markers, 'ack-sent-whole');
    const g = await stage();
    try {
      await withWrapper(
        `${NO_SESSION}\nack\\ *) head -c 200000000 /dev/zero && touch '${done}'; exit 0 ;;`,
        async () => {
          await expectFailure(
            await sinkConfig(),
            // the ack is a line dialogue: the gate's reply is read line by line, each at most 64 KiB
            /ack of .* failed: a line longer than 65536 bytes/,
          );
        },
      );
      assert.equal(existsSync(done), false, 'the whole 200 MB answer was read');
      assert.deepEqual(await ids(H.data), [g.id], 'still pending on the source');
    } finally {
      await clearHandover();
      // published before the ack failed: a later run acks it; keep the store as the next tests expect
    }
  },
);

// ---------------------------------------------------------------------------------------------------------
// hole 5: disk use is bounded

test(
  'a manifest larger than limits.maxManifestBytes -> refused before it is pulled, nothing quarantined',
  { skip: NEEDS_ROOT },
  async () => {
    // a valid manifest padded with 3 MB of comment-free junk lines: the size alone must refuse it
    const g = await stage({ manifest: (m) => `${m}${'x'.repeat(3_000_000)}\n` });
    try {
      const before = await readdir(join(H.sinkData, '.quarantine')).catch(() => [] as string[]);
      await expectFailure(
        await sinkConfig('maxManifestBytes: 1000000'),
        new RegExp(
          `generation ${g.id} announces a manifest of \\d+ bytes, over limits.maxManifestBytes \\(1000000\\)`,
        ),
      );
      assert.deepEqual(
        await readdir(join(H.sinkData, '.quarantine')).catch(() => []),
        before,
        'nothing quarantined',
      );
      assert.deepEqual(await readdir(join(H.sinkData, '.incoming')).catch(() => []), [], 'nothing pulled in');
    } finally {
      await clearHandover();
    }
  },
);

test(
  'a file declared 7 B but 50 MB in the tree -> never transferred (rsync --max-size), rejected',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({
      files: { 'small.txt': 'seven!\n', 'other.txt': 'x\n' },
      tamper: async (d) => {
        await writeFile(join(d, 'tree', 'small.txt'), Buffer.alloc(50 * 2 ** 20, 0x41));
        await chownTree(join(d, 'tree', 'small.txt'));
      },
    });
    try {
      await expectFailure(await sinkConfig(), /failed verification|missing: small\.txt|size: small\.txt/);
      // what the sink kept of it (quarantine, .incoming) holds no file anywhere near 50 MB
      let largest = 0;
      const walk = async (dir: string): Promise<void> => {
        for (const n of await readdir(dir).catch(() => [] as string[])) {
          const st = await lstat(join(dir, n));
          if (st.isDirectory()) await walk(join(dir, n));
          else largest = Math.max(largest, st.size);
        }
      };
      await walk(join(H.sinkData, '.quarantine'));
      await walk(join(H.sinkData, '.incoming'));
      assert.ok(largest < 2 * 2 ** 20, `a ${largest} byte file arrived`);
      assert.equal((await ids(H.sinkData)).includes(g.id), false, 'not published');
    } finally {
      await clearHandover();
    }
  },
);

// ---------------------------------------------------------------------------------------------------------
// hole 7: ids from the future

test(
  'a generation id 9999-12-31T235959Z -> refused and alerted, the real one before it pulled; never published',
  { skip: NEEDS_ROOT },
  async () => {
    const real = await stage();
    const future = await stage({}, '9999-12-31T235959Z');
    try {
      await expectFailure(
        await sinkConfig(),
        /generation\(s\) 9999-12-31T235959Z dated more than 10m ahead of this sink's clock/,
      );
      const stored = await ids(H.sinkData);
      assert.ok(stored.includes(real.id), 'the real generation was pulled');
      assert.equal(stored.includes(future.id), false, 'the future one never published');
      assert.deepEqual(await ids(H.data), [future.id], 'the real one acked, the future one left pending');
    } finally {
      await clearHandover();
    }
  },
);

test(
  'a future id already in the sink store -> status names it and does not call the stream fresh',
  { skip: NEEDS_ROOT },
  async () => {
    // as a sink without this check would have published it
    const planted = await writeGeneration(H.sinkData, '9999-12-31T235959Z', {
      source: SOURCE,
      stream: 'data',
    });
    try {
      const config = await sinkConfig('', 'staleAfter: 1h');
      const r = await runBaton(['status', '--config', config, '--json'], { timeoutMs: 60_000 });
      const report = z
        .object({
          problems: z.array(z.object({ kind: z.string(), message: z.string() })),
          streams: z.array(z.object({ newest: z.object({ id: z.string() }).nullable() })),
        })
        .parse(JSON.parse(r.stdout));
      assert.ok(
        report.problems.some((p) => p.kind === 'future' && p.message.includes('9999-12-31T235959Z')),
        show(r),
      );
      // the newest real one (from 2026-01-01) is far older than 1h: stale, not "all ok, age 0 s"
      assert.ok(
        report.problems.some((p) => p.kind === 'stale'),
        show(r),
      );
      assert.notEqual(report.streams[0]?.newest?.id, '9999-12-31T235959Z');
    } finally {
      await rm(planted.dir, { recursive: true, force: true });
    }
  },
);

// ---------------------------------------------------------------------------------------------------------
// hole 9: a trickling source, a stuck lock

/** A forced command that passes the gate's rsync answer through at 64 bytes per second. */
async function trickleCases(): Promise<string> {
  const trickle = join(root, 'trickle.cjs');
  await writeFile(
    trickle,
    `const q=[];let ended=false;
process.stdin.on('data',(b)=>{q.push(b);if(q.length>4)process.stdin.pause();});
process.stdin.on('end',()=>{ended=true;});
setInterval(()=>{const b=q.shift();if(b){process.stdout.write(b.subarray(0,64));if(b.length>64)q.unshift(b.subarray(64));}
else if(ended)process.exit(0);if(q.length<=4)process.stdin.resume();},1000);
`,
  );
  await chmod(trickle, 0o644);
  return `rsync\\ *) ${gate()} | '${process.execPath}' '${trickle}' ;;`;
}

test(
  'a source trickling at 64 B/s -> ended by limits.minThroughput with one line and an alert',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({ files: { 'big.bin': Buffer.alloc(2 ** 20, 7) } });
    try {
      await withWrapper(await trickleCases(), async () => {
        const r = await expectFailure(
          await sinkConfig('minThroughput: { bytes: 100000, window: 4s }'),
          /too slow, fewer than 100000 bytes received in 4s \(limits.minThroughput/,
        );
        assert.ok(r.durationMs < 60_000, `took ${r.durationMs} ms`);
      });
      assert.equal((await ids(H.sinkData)).includes(g.id), false);
    } finally {
      await clearHandover();
    }
  },
);

test(
  'a source trickling at 64 B/s -> ended by limits.maxPullDuration with one line and an alert',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage({ files: { 'big.bin': Buffer.alloc(2 ** 20, 9) } });
    try {
      await withWrapper(await trickleCases(), async () => {
        const r = await expectFailure(
          await sinkConfig('maxPullDuration: 6s, minThroughput: { bytes: 0 }'),
          /the pull ran longer than limits.maxPullDuration \(6s\) and was ended/,
        );
        assert.ok(r.durationMs < 60_000, `took ${r.durationMs} ms`);
      });
      assert.equal((await ids(H.sinkData)).includes(g.id), false);
    } finally {
      await clearHandover();
    }
  },
);

test(
  'the lock held by the same live run for longer than alerts.lockHeldAfter -> exit 1 and an alert, not a silent 75',
  { skip: NEEDS_ROOT },
  async () => {
    const lock = join(H.sinkState, 'locks', `${SOURCE}-data.lock`);
    await mkdir(join(H.sinkState, 'locks'), { recursive: true });
    // a live process (this test runner) that took the lock 3 hours ago
    const owner = {
      pid: process.pid,
      host: hostname(),
      startedAt: new Date(Date.now() - 3 * 3_600_000).toISOString(),
      command: 'baton sink pull data --source bounded',
    };
    await writeFile(lock, JSON.stringify(owner));
    try {
      // held for less than the limit: skipped quietly (75), no mail
      const mails = smtp.messages.length;
      const quiet = await runBaton([
        'sink',
        'pull',
        'data',
        '--config',
        await sinkConfig('', 'lockHeldAfter: 4h'),
      ]);
      assert.equal(quiet.code, 75, show(quiet));
      const mails2 = smtp.messages.length;
      assert.equal(mails2, mails, 'no alert yet');
      const { r, error } = await pull(await sinkConfig('', 'lockHeldAfter: 2h'));
      assert.equal(r.code, 1, show(r));
      assert.match(
        error,
        new RegExp(
          `pid ${process.pid} on .* has held the lock for 3h 0m, longer than alerts.lockHeldAfter \\(2h\\)`,
        ),
      );
      const mail = (await smtp.waitFor(mails2 + 1, 30_000)).at(-1);
      assert.ok(mail);
      assert.match(mail.text, /longer than alerts.lockHeldAfter/);
      assert.ok(existsSync(lock), 'the other run’s lock is not taken');
    } finally {
      await rm(lock, { force: true });
    }
  },
);
