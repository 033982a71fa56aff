import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import {
  generationIds,
  makeSourceSetup,
  sleep,
  workDirs,
  type SourceSetup,
} from '../helpers/source-setup.js';

// Faults on the source (issue "Faults", cases 1, 3–10, 26, 27), each checked against the
// invariants: the app runs at the end (or an APP DOWN alert went out), no partial generation is
// visible, failures exit non-zero with a record and an alert.
const NEEDS_ROOT = needsRootOrSkipFile('faults-source', 'users, tmpfs');

const USERS = { data: 'batonFltData', logs: 'batonFltLogs' };
let root: string;
let smtp: SmtpSink;
const setups: SourceSetup[] = [];

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-faults-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  await ensureUser(USERS.data);
  await ensureUser(USERS.logs);
});

after(async () => {
  if (NEEDS_ROOT) return;
  for (const s of setups) s.app.kill();
  await smtp.stop();
  await runProcess(['sh', '-c', `grep -q ' ${root}/' /proc/mounts && umount ${root}/*/tmpfs || true`]);
  await rm(root, { recursive: true, force: true });
});

async function setup(
  name: string,
  over: Partial<Parameters<typeof makeSourceSetup>[1]> = {},
): Promise<SourceSetup> {
  const s = await makeSourceSetup(root, {
    name,
    dataUser: USERS.data,
    logsUser: USERS.logs,
    mailUrl: smtp.url,
    ...over,
  });
  setups.push(s);
  return s;
}

const backup = (s: SourceSetup, env: NodeJS.ProcessEnv = {}) =>
  runBaton(['source', 'backup', '--config', s.config], { env });

async function assertNoPartials(s: SourceSetup): Promise<void> {
  for (const d of [s.handoverData, s.handoverLogs, s.store]) {
    assert.deepEqual(await workDirs(d), [], `no work dirs left in ${d}`);
  }
}

test(
  'case 1: stop exits non-zero -> nothing collected, start still run, failure alert',
  { skip: NEEDS_ROOT },
  async () => {
    // no live pre-pass: the mirror must stay untouched when the app cannot be stopped
    const s = await setup('stopfails', { stop: 'echo cannot stop >&2; exit 4', prepass: false });
    const n = smtp.messages.length;
    const r = await backup(s);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /baton: stop-app: stop command .* failed: exit 4: cannot stop/);
    assert.ok(s.app.isRunning());
    assert.deepEqual(await generationIds(s.handoverData), []);
    assert.equal(
      existsSync(join(s.state, 'mirror', 'data', s.app.dataDir.slice(1))),
      false,
      'nothing collected',
    );
    const mails = await smtp.waitFor(n + 1);
    assert.match(mails.at(-1)!.subject, /source backup FAILED \(stop-app\)/);
    assert.match(mails.at(-1)!.text, /cannot stop/);
  },
);

test(
  'case 3: a health check that never passes -> APP DOWN failure and urgent alert',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('nohealth', { startTimeout: '3s' });
    await writeFile(
      s.config,
      (await readFile(s.config, 'utf8')).replace(/healthCheck: .*/, 'healthCheck: "exit 1"'),
    );
    const n = smtp.messages.length;
    const started = Date.now();
    const r = await backup(s);
    assert.equal(r.code, 1, show(r));
    assert.ok(Date.now() - started < 30_000, 'bounded by startTimeout');
    assert.match(
      r.stderr,
      /APP DOWN: the app did not come back within 3s: health check `exit 1` did not pass/,
    );
    const mails = await smtp.waitFor(n + 1);
    assert.match(mails.at(-1)!.subject, /APP DOWN/);
    assert.match(mails.at(-1)!.text, /NOT running/);
  },
);

for (const point of ['app-stopped', 'collected', 'mid-build', 'before-publish']) {
  test(
    `case 4: SIGKILL at ${point} -> recover restarts the app, removes work dirs, next run publishes one complete generation`,
    { skip: NEEDS_ROOT },
    async () => {
      const s = await setup(`kill-${point}`);
      const r = await backup(s, { BATON_CRASH_AT: point });
      assert.equal(r.signal, 'SIGKILL', show(r));
      assert.deepEqual(await generationIds(s.handoverData), [], 'nothing published by the killed run');
      const rec = await runBaton(['source', 'recover', '--config', s.config]);
      assert.equal(rec.code, 0, show(rec));
      assert.ok(s.app.isRunning(), 'app running after recover');
      assert.equal(existsSync(join(s.state, 'app-stopped.json')), false);
      await assertNoPartials(s);
      await sleep(1100);
      const again = await backup(s);
      assert.equal(again.code, 0, show(again));
      const ids = await generationIds(s.handoverData);
      assert.equal(ids.length, 1);
      const check = await runProcess(['sh', '-c', 'cd tree && sha256sum --quiet -c ../SHA256SUMS'], {
        cwd: join(s.handoverData, ids[0]!),
      });
      assert.equal(check.code, 0, check.stderr);
    },
  );
}

test(
  'case 4: the next backup itself repairs a run killed while the app was down',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('kill-nextrun');
    const r = await backup(s, { BATON_CRASH_AT: 'app-stopped' });
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(s.app.isRunning(), false);
    await sleep(1100);
    const again = await backup(s);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stderr, /a killed run left the app stopped: starting it/);
    assert.ok(s.app.isRunning());
    assert.equal((await generationIds(s.handoverData)).length, 1);
  },
);

test(
  'case 5: SIGTERM during collection -> app restarted, no generation, non-zero exit',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('sigterm');
    const child = runProcess([process.execPath, BATON_MAIN, 'source', 'backup', '--config', s.config], {
      env: { ...process.env, BATON_CRASH_AT: 'pause:collected' },
      timeoutMs: 60_000,
    });
    // wait until the app is down (stop record written; the live pre-pass comes first and takes a
    // while on a loaded machine), then signal baton
    for (let i = 0; i < 1200 && !existsSync(join(s.state, 'app-stopped.json')); i++) await sleep(50);
    assert.ok(existsSync(join(s.state, 'app-stopped.json')), 'the app was stopped within 60 s');
    await sleep(500);
    const pids = await runProcess(['pgrep', '-f', `${BATON_MAIN} source backup --config ${s.config}`]);
    const pid = Number(pids.stdout.trim().split('\n')[0]);
    assert.ok(pid > 0, 'found the running baton');
    process.kill(pid, 'SIGTERM');
    const r = await child;
    assert.equal(r.code, 1, `exit 1 after SIGTERM\n${r.stderr}`);
    assert.match(r.stderr, /SIGTERM received/);
    assert.match(r.stderr, /interrupted by a signal while collecting/);
    assert.ok(s.app.isRunning(), 'the app was started again');
    assert.deepEqual(await generationIds(s.handoverData), []);
    await assertNoPartials(s);
  },
);

test('case 6: a data path that yields 0 files -> failure, no generation', { skip: NEEDS_ROOT }, async () => {
  const s = await setup('nofiles');
  const empty = join(s.dir, 'empty');
  await mkdir(empty);
  await writeFile(
    s.config,
    (await readFile(s.config, 'utf8')).replace(/data: \{ paths: \[[^\]]*\]/, `data: { paths: [${empty}]`),
  );
  const r = await backup(s);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /collected no files for data/);
  assert.ok(s.app.isRunning());
  assert.deepEqual(await generationIds(s.handoverData), []);
  await assertNoPartials(s);
});

test(
  'case 7: ENOSPC while collecting -> app restarted, partial removed, pending handover untouched',
  { skip: NEEDS_ROOT },
  async () => {
    const name = 'enospc';
    const fs = join(root, name, 'tmpfs');
    await mkdir(fs, { recursive: true });
    const m = await runProcess(['mount', '-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', fs]);
    assert.equal(m.code, 0, m.stderr);
    const s = await setup(name, { storageRoot: fs });
    const first = await backup(s);
    assert.equal(first.code, 0, show(first));
    const pending = await generationIds(s.handoverData);
    assert.equal(pending.length, 1);
    // the stop command grows the data past the free space: preflight could not know
    const grow = `${s.app.stopCmd}\nhead -c 16000000 /dev/urandom > ${s.app.dataDir}/big.bin`;
    await writeFile(
      s.config,
      (await readFile(s.config, 'utf8')).replace(/stop: .*/, `stop: ${JSON.stringify(grow)}`),
    );
    await sleep(1100);
    const r = await backup(s);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /collect: (collecting|copying the changes of) data: rsync exit/);
    assert.ok(s.app.isRunning(), 'app running after ENOSPC');
    assert.deepEqual(await generationIds(s.handoverData), pending, 'pending generation untouched');
    await assertNoPartials(s);
    await unlink(join(s.app.dataDir, 'big.bin'));
  },
);

test(
  'case 8: the transport never acks -> alert every run, then a loud failure at the pending cap',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('nocap', { maxPending: 2 });
    for (let i = 0; i < 2; i++) {
      const n = smtp.messages.length;
      const r = await backup(s);
      assert.equal(r.code, 0, show(r));
      if (i > 0) {
        const mails = await smtp.waitFor(n + 1);
        assert.match(mails.at(-1)!.subject, /transport of data and logs failed/);
      }
      await sleep(1100);
    }
    const pid = await readFile(s.app.pidFile, 'utf8');
    const r = await backup(s);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /2 un-acked generations wait .* limits\.maxPendingGenerations = 2/);
    assert.equal(await readFile(s.app.pidFile, 'utf8'), pid, 'the app was not stopped');
    assert.equal((await generationIds(s.handoverData)).length, 2, 'nothing overwritten');
  },
);

test(
  'case 9: mail server down -> restart unaffected, alert kept and sent by the next run',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('maildown', { stop: 'exit 5', mailUrl: 'smtp://127.0.0.1:9' });
    const r = await backup(s);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /baton: stop-app: /, 'the original error is the one reported');
    assert.ok(s.app.isRunning());
    const kept = await readdir(join(s.state, 'pending-alerts'));
    assert.equal(kept.length, 1, 'the alert is kept for the next run');
    const cfg = await readFile(s.config, 'utf8');
    await writeFile(
      s.config,
      cfg
        .replace('smtp://127.0.0.1:9', smtp.url)
        .replace('stop: "exit 5"', `stop: ${JSON.stringify(s.app.stopCmd)}`),
    );
    const n = smtp.messages.length;
    const ok = await backup(s);
    assert.equal(ok.code, 0, show(ok));
    const mails = await smtp.waitFor(n + 1);
    assert.ok(mails.slice(n).some((m) => /source backup FAILED \(stop-app\) \(delayed/.test(m.subject)));
    assert.deepEqual(await readdir(join(s.state, 'pending-alerts')), []);
  },
);

test(
  'case 10: a lock left by a killed run is taken over; a live one gives 75',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('stalelock');
    await mkdir(s.state, { recursive: true });
    await writeFile(
      join(s.state, 'source.lock'),
      JSON.stringify({ pid: 999999, host: hostname(), startedAt: 'x', command: 'dead run' }),
    );
    const r = await backup(s);
    assert.equal(r.code, 0, show(r));
    await writeFile(
      join(s.state, 'source.lock'),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', command: 'the test itself' }),
    );
    const locked = await backup(s);
    assert.equal(locked.code, 75, show(locked));
    await unlink(join(s.state, 'source.lock'));
  },
);

test(
  'case 26: handover equal to the store or inside a data path -> config error, nothing touched',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('badcfg');
    const cfg = await readFile(s.config, 'utf8');
    await writeFile(s.config, cfg.replace(`store: ${s.store}`, `store: ${s.handoverData}`));
    const r = await backup(s);
    assert.equal(r.code, 2, show(r));
    assert.match(
      r.stderr,
      /streams\.data\.store: must not be the same as or nested with streams\.data\.handover/,
    );
    await writeFile(
      s.config,
      cfg.replace(`handover: ${s.handoverData}`, `handover: ${s.app.dataDir}/handover`),
    );
    const r2 = await backup(s);
    assert.equal(r2.code, 2, show(r2));
    assert.match(r2.stderr, /must not overlap the backed-up path/);
    assert.equal(existsSync(s.state), false, 'nothing written');
    assert.equal(existsSync(s.handoverData), false);
  },
);

test(
  'case 27: rsync missing -> preflight fails before the app is stopped',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('norsync');
    const bin = join(root, 'bin-without-rsync');
    await mkdir(bin, { recursive: true });
    for (const f of await readdir('/usr/bin'))
      if (f !== 'rsync') await symlink(join('/usr/bin', f), join(bin, f)).catch(() => undefined);
    const pid = await readFile(s.app.pidFile, 'utf8');
    const r = await backup(s, { PATH: `${bin}:/usr/sbin:/sbin` });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /baton: preflight: rsync is not installed/);
    assert.equal(await readFile(s.app.pidFile, 'utf8'), pid, 'the app was not stopped');
  },
);

test(
  'case 23: a source clock that jumped back (within the skew) still yields a newer generation id',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('clockskew');
    const future = new Date(Date.now() + 5 * 60_000).toISOString();
    const r1 = await backup(s, { BATON_NOW: future });
    assert.equal(r1.code, 0, show(r1));
    const r2 = await backup(s);
    assert.equal(r2.code, 0, show(r2));
    const ids = await generationIds(s.handoverData);
    assert.equal(ids.length, 2);
    assert.ok(ids[1]! > ids[0]!, `ids keep their order after the clock went back: ${ids.join(' ')}`);
    assert.ok(ids[0]!.startsWith(future.slice(0, 10)), 'the first id is from the future clock');
  },
);

for (const where of ['handover', 'store'] as const) {
  test(
    `issue 10 hole 14: a generation id far ahead of the clock in the ${where} is refused at once, with one line and an alert`,
    { skip: NEEDS_ROOT },
    async () => {
      const s = await setup(`farfuture-${where}`);
      const r0 = await backup(s);
      assert.equal(r0.code, 0, show(r0));
      const planted = join(where === 'handover' ? s.handoverData : s.store, '2099-01-01T000000Z');
      await mkdir(join(planted, 'tree'), { recursive: true });
      await writeFile(join(planted, 'manifest'), '');
      const pid = await readFile(s.app.pidFile, 'utf8');
      const n = smtp.messages.length;
      const started = Date.now();
      // the old id search counted up one second at a time toward 2099: it never ended
      const r = await runBaton(['source', 'backup', '--config', s.config], { timeoutMs: 60_000 });
      assert.equal(r.timedOut, false, 'the run ends by itself');
      assert.ok(Date.now() - started < 60_000);
      assert.equal(r.code, 1, show(r));
      // one error line (the rest of stderr is the log)
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('baton:'));
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(
        lines[0]!,
        /^baton: preflight: generation .*2099-01-01T000000Z is .* ahead of this host's clock .*fix the clock/,
      );
      assert.equal(await readFile(s.app.pidFile, 'utf8'), pid, 'the app was not stopped');
      assert.ok(s.app.isRunning());
      assert.deepEqual(
        (await generationIds(s.handoverData)).filter((id) => !id.startsWith('2099')).length,
        1,
      );
      const mails = await smtp.waitFor(n + 1);
      assert.match(mails.at(-1)!.subject, /source backup FAILED \(preflight\)/);
      assert.match(mails.at(-1)!.text, /2099-01-01T000000Z is .* ahead of this host's clock/);
      // the lock was released: once the planted id is gone, the next run works
      await rm(planted, { recursive: true });
      const r2 = await backup(s);
      assert.equal(r2.code, 0, show(r2));
    },
  );
}

/** Sends SIGTERM once baton holds its lock (its signal handlers are installed by then). */
async function termWhenLocked(pid: number, lock: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (!existsSync(`/proc/${pid}`)) return; // it had already refused and exited
    if (existsSync(lock)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* exited meanwhile */
      }
      return;
    }
    await sleep(20);
  }
}

test(
  'issue 10 hole 14: with a far-future id planted, a SIGTERM ends the run at once (the event loop is never blocked)',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('farfuture-sigterm');
    const planted = join(s.handoverData, '2099-01-01T000000Z');
    await mkdir(join(planted, 'tree'), { recursive: true });
    await writeFile(join(planted, 'manifest'), '');
    const r = await runProcess([process.execPath, BATON_MAIN, 'source', 'backup', '--config', s.config], {
      env: process.env,
      timeoutMs: 60_000,
      // while it holds the lock (where the old id search spun): it must act on it, or have refused already
      onSpawn: (pid) => void termWhenLocked(pid, join(s.state, 'source.lock')),
    });
    assert.equal(r.timedOut, false, `the run ended: ${show(r)}`);
    assert.equal(r.signal, null, 'baton handled the signal (not killed by it)');
    assert.equal(r.code, 1, show(r));
    assert.ok(s.app.isRunning());
  },
);

test(
  'case 13: rsync exit 23 (partial transfer) fails the backup; the app runs, nothing is published',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await setup('rsync23');
    // Root reads every file, so a real exit 23 cannot be provoked reliably: a wrapper earlier in
    // PATH runs the real rsync (so the mirror is refreshed) and then reports a partial transfer.
    const bin = join(root, 'bin-rsync23');
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, 'rsync'),
      '#!/bin/sh\ncase "$1" in --version) exec /usr/bin/rsync "$@";; esac\n/usr/bin/rsync "$@"\necho "rsync: [sender] read errors mapping \\"x\\": Input/output error (5)" >&2\nexit 23\n',
      { mode: 0o755 },
    );
    const r = await backup(s, { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /collect: collecting data: rsync exit 23 \(partial transfer due to error\)/);
    assert.ok(s.app.isRunning());
    assert.deepEqual(await generationIds(s.handoverData), []);
    await assertNoPartials(s);
  },
);
