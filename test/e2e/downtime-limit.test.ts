import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, workDirs, type SourceSetup } from '../helpers/source-setup.js';

// app.maxDowntime: a collection that hangs while the app is down (here: its rsync stops itself with
// SIGSTOP, as a stalled disk or network mount would) is aborted, the app is started again, the run
// fails with a record and an alert, and nothing partial is published.
const NEEDS_ROOT = needsRootOrSkipFile('downtime-limit', 'creates users');

const USERS = { data: 'batonDtlData', logs: 'batonDtlLogs' };
let root: string;
let smtp: SmtpSink;
let s: SourceSetup;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-downtime-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  await ensureUser(USERS.data);
  await ensureUser(USERS.logs);
  s = await makeSourceSetup(root, {
    name: 'hang',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    mailUrl: smtp.url,
    maxDowntime: '3s',
  });
});

after(async () => {
  if (NEEDS_ROOT) return;
  s.app.kill();
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

/** A killed process may linger as a zombie until whoever inherited it reaps it: that counts as gone. */
function goneOrZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * A `rsync` first on PATH that stops itself (SIGSTOP, as a process blocked on a stalled disk or
 * network mount would hang) when it is the data mirror's refresh, after writing its pid; anything
 * else runs the real rsync.
 */
async function hangingRsync(): Promise<{ path: string; pidFile: string }> {
  const bin = join(root, 'bin');
  await mkdir(bin, { recursive: true });
  const pidFile = join(root, 'stopped.pid');
  await writeFile(
    join(bin, 'rsync'),
    `#!/bin/sh\ncase "$*" in *"${join(s.state, 'mirror', 'data')}/"*) echo $$ > '${pidFile}'; kill -STOP $$ ;; esac\nexec /usr/bin/rsync "$@"\n`,
    { mode: 0o755 },
  );
  return { path: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, pidFile };
}

test(
  'a collection that hangs past app.maxDowntime -> aborted, app started again, run fails with record and alert; the next run completes',
  { skip: NEEDS_ROOT },
  async () => {
    const dry = await runBaton(['source', 'backup', '--dry-run', '--config', s.config]);
    assert.equal(dry.code, 0, show(dry));
    assert.match(dry.stdout, /app down at most 3s \(app\.maxDowntime\)/);

    const mails = smtp.messages.length;
    const hang = await hangingRsync();
    const started = Date.now();
    const r = await runProcess([process.execPath, BATON_MAIN, 'source', 'backup', '--config', s.config], {
      env: { ...process.env, PATH: hang.path },
      timeoutMs: 60_000,
    });
    const tookMs = Date.now() - started;
    const stopped = Number((await readFile(hang.pidFile, 'utf8')).trim());
    assert.ok(stopped > 0, 'the data mirror refresh ran and stopped itself');
    // baton must have killed it (checked below); this only keeps a failing test from leaking it
    const leftovers = [stopped].filter((pid) => !goneOrZombie(pid));
    for (const pid of leftovers) process.kill(pid, 'SIGKILL');
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      /^baton: .*longer than app\.maxDowntime \(3s\): aborted, the app is started again/m,
    );
    assert.ok(tookMs < 40_000, `bounded: the run ended after ${tookMs} ms`);
    assert.ok(s.app.isRunning(), 'the app runs again');
    assert.deepEqual(await generationIds(s.handoverData), [], 'nothing published');
    for (const d of [s.handoverData, s.handoverLogs]) assert.deepEqual(await workDirs(d), []);
    assert.equal(existsSync(join(s.state, 'app-stopped.json')), false, 'the app-down record is cleared');
    assert.deepEqual(leftovers, [], 'baton killed every process of the aborted collection');

    const got = await smtp.waitFor(mails + 1);
    assert.match(got.at(-1)!.subject, /FAILED/);
    assert.match(got.at(-1)!.text, /maxDowntime/);
    const st = await runBaton(['status', '--config', s.config]);
    assert.equal(st.code, 1, show(st));
    const lastRun = JSON.parse(await readFile(join(s.state, 'last-run.json'), 'utf8')) as {
      ok: boolean;
      error?: string;
    };
    assert.equal(lastRun.ok, false);
    assert.match(lastRun.error ?? '', /maxDowntime/);

    // nothing hangs any more: the next run completes within the same limit
    const ok = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(ok.code, 0, show(ok));
    assert.equal((await generationIds(s.handoverData)).length, 1);
  },
);
