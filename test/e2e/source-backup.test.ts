// test-lock: backup-users (dataBackupSource / logBackupSource, the contract's fixed names)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
  chown,
  symlink,
  lstat,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { readManifest } from '../../src/generation/manifest-file.js';
import { createFakeApp, type FakeApp } from '../helpers/fake-app.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { ensureUser, type TestUser, needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';

// Real users, real rsync, a real fake app server and a real SMTP server on loopback.
const NEEDS_ROOT = needsRootOrSkipFile('source-backup', 'creates users dataBackupSource/logBackupSource');

let root: string;
let smtp: SmtpSink;
let dataUser: TestUser;
let logUser: TestUser;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-src-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  dataUser = await ensureUser('dataBackupSource');
  logUser = await ensureUser('logBackupSource');
});

after(async () => {
  if (NEEDS_ROOT) return;
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

interface Setup {
  dir: string;
  app: FakeApp;
  config: string;
  handoverData: string;
  handoverLogs: string;
  store: string;
  state: string;
}

async function setup(
  name: string,
  over: {
    stop?: string;
    start?: string;
    stopTimeout?: string;
    startTimeout?: string;
    extraPath?: string;
    transportOverdue?: string;
  } = {},
): Promise<Setup> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const app = createFakeApp(join(dir, 'app'));
  // data the app does not touch: a private file of another user, odd names, a symlink, an empty dir
  const etc = join(dir, 'app', 'etc');
  await mkdir(join(etc, 'empty'), { recursive: true });
  await writeFile(join(etc, 'secret.conf'), 'password=hunter2\n', { mode: 0o600 });
  await chown(join(etc, 'secret.conf'), 4242, 4243);
  await writeFile(join(etc, 'new\nline name'), 'odd\n');
  await writeFile(Buffer.concat([Buffer.from(`${etc}/`), Buffer.from([0x6c, 0xe9, 0xff])]), 'not utf-8\n');
  await symlink('/etc/passwd', join(etc, 'link-to-passwd'));
  await runProcess(['/bin/sh', '-c', app.startCmd], { timeoutMs: 20_000 });
  const handoverData = join(dir, 'handover', 'data');
  const handoverLogs = join(dir, 'handover', 'logs');
  const store = join(dir, 'store');
  const state = join(dir, 'state');
  const config = join(dir, 'source.yaml');
  const paths = [app.dataDir, etc, ...(over.extraPath ? [over.extraPath] : [])];
  await writeFile(
    config,
    `name: shop-${name}
stateDir: ${state}
app:
  stop: ${JSON.stringify(over.stop ?? app.stopCmd)}
  start: ${JSON.stringify(over.start ?? app.startCmd)}
  healthCheck: ${JSON.stringify(app.healthCmd)}
  stopTimeout: ${over.stopTimeout ?? '30s'}
  startTimeout: ${over.startTimeout ?? '30s'}
streams:
  data:
    paths: ${JSON.stringify(paths)}
    exclude: ["*.tmp"]
    handover: ${handoverData}
    user: dataBackupSource
    store: ${store}
    generations: 2
  logs:
    paths: [${app.logDir}]
    handover: ${handoverLogs}
    user: logBackupSource
alerts:
${over.transportOverdue ? `  transportOverdue: ${over.transportOverdue}\n` : ''}  mail: { to: [ops@example.com], from: baton@${name}, smtp: "${smtp.url}" }
`,
  );
  return { dir, app, config, handoverData, handoverLogs, store, state };
}

async function generations(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).filter((n) => !n.startsWith('.')).sort() : [];
}

test(
  'a backup writes complete, verifiable generations of both streams and the app keeps running',
  { skip: NEEDS_ROOT },
  async (t) => {
    const s = await setup('basic');
    t.after(() => s.app.kill());
    await writeFile(join(s.app.dataDir, 'skip.tmp'), 'excluded');
    const r = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r.code, 0, show(r));
    assert.ok(s.app.isRunning(), 'app runs after the backup');
    const [id] = await generations(s.handoverData);
    assert.ok(id, 'a data generation was handed over');
    assert.deepEqual(await generations(s.handoverLogs), [id]);
    const gen = join(s.handoverData, id);
    assert.deepEqual((await readdir(gen)).sort(), ['SHA256SUMS', 'manifest', 'meta.json', 'tree']);
    // sha256sum -c passes with plain coreutils
    const check = await runProcess(['sh', '-c', 'cd tree && sha256sum --quiet -c ../SHA256SUMS'], {
      cwd: gen,
    });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    // meta.json
    const meta = JSON.parse(await readFile(join(gen, 'meta.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(meta.id, id);
    assert.equal(meta.stream, 'data');
    assert.equal(meta.source, 'shop-basic');
    assert.equal(typeof meta.downtimeMs, 'number');
    assert.ok((meta.downtimeMs as number) > 0);
    assert.ok((meta.files as number) >= 4);
    assert.equal(meta.bytesCopied, meta.bytes, 'first generation copies everything');
    // ownership normalised, original metadata kept in the manifest
    const etcRel = join(s.dir, 'app', 'etc').slice(1);
    const secret = await stat(join(gen, 'tree', etcRel, 'secret.conf'));
    assert.equal(secret.uid, dataUser.uid);
    assert.equal(secret.mode & 0o400, 0o400);
    const entries = new Map<string, { uid: number; mode: number; type: string; target?: string }>();
    for await (const e of readManifest(join(gen, 'manifest'))) {
      entries.set(e.path.toString('latin1'), {
        uid: e.uid,
        mode: e.mode,
        type: e.type,
        target: e.target?.toString(),
      });
    }
    assert.deepEqual(entries.get(`${etcRel}/secret.conf`), {
      uid: 4242,
      mode: 0o600,
      type: 'f',
      target: undefined,
    });
    assert.equal(entries.get(`${etcRel}/new\nline name`)?.type, 'f');
    assert.equal(entries.get(`${etcRel}/l\u00e9\u00ff`)?.type, 'f', 'a non-UTF-8 name round-trips');
    assert.deepEqual(entries.get(`${etcRel}/link-to-passwd`), {
      uid: 0,
      mode: 0o777,
      type: 'l',
      target: '/etc/passwd',
    });
    assert.equal(entries.get(`${etcRel}/empty`)?.type, 'd');
    assert.equal(entries.has(`${s.app.dataDir.slice(1)}/skip.tmp`), false, 'excluded file not collected');
    assert.ok((await lstat(join(gen, 'tree', etcRel, 'link-to-passwd'))).isSymbolicLink());
    // logs stream owned by its own user
    assert.equal(
      (await stat(join(s.handoverLogs, id, 'tree', s.app.logDir.slice(1), 'app.log'))).uid,
      logUser.uid,
    );
  },
);

test(
  'a second run with the first generation pending mails a transport alert and hard-links unchanged files',
  { skip: NEEDS_ROOT },
  async (t) => {
    const s = await setup('second');
    t.after(() => s.app.kill());
    const r1 = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r1.code, 0, show(r1));
    const before = smtp.messages.length;
    await new Promise((res) => setTimeout(res, 1100));
    const r2 = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r2.code, 0, show(r2));
    const ids = await generations(s.handoverData);
    assert.equal(ids.length, 2, 'the pending generation is kept beside the new one');
    const mails = await smtp.waitFor(before + 1);
    const alert = mails.slice(before).find((m) => /transport/.test(m.subject));
    assert.ok(alert, 'transport alert mailed');
    assert.match(alert.subject, /shop-second/);
    assert.match(alert.subject, /transport of data and logs failed/);
    assert.ok(alert.text.includes(ids[0]!), 'the body lists the pending generation');
    // an unchanged file is a hard link to the previous generation; the counter changed
    const etcRel = join(s.dir, 'app', 'etc').slice(1);
    const a = await stat(join(s.handoverData, ids[0]!, 'tree', etcRel, 'secret.conf'));
    const b = await stat(join(s.handoverData, ids[1]!, 'tree', etcRel, 'secret.conf'));
    assert.equal(a.ino, b.ino);
    const meta = JSON.parse(await readFile(join(s.handoverData, ids[1]!, 'meta.json'), 'utf8')) as {
      bytes: number;
      bytesCopied: number;
      previous: string;
    };
    assert.ok(meta.bytesCopied < meta.bytes, `only changes copied (${meta.bytesCopied} of ${meta.bytes})`);
    assert.equal(meta.previous, ids[0]);
  },
);

test(
  'a hung stop command is killed after stopTimeout, the app is started, the run fails with an alert',
  { skip: NEEDS_ROOT },
  async (t) => {
    // a sleep length no other process on the machine uses, so pgrep finds only ours
    const hang = `sleep ${300 + (process.pid % 1000) / 1000}`;
    const s = await setup('hungstop', { stop: hang, stopTimeout: '2s' });
    t.after(() => s.app.kill());
    const before = smtp.messages.length;
    const started = Date.now();
    const r = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r.code, 1, show(r));
    assert.ok(Date.now() - started < 60_000);
    assert.ok(r.stderr.includes(`baton: stop-app: stop command \`${hang}\` failed: timed out`), r.stderr);
    assert.ok(s.app.isRunning());
    assert.deepEqual(await generations(s.handoverData), []);
    const mails = await smtp.waitFor(before + 1);
    assert.match(mails.at(-1)!.subject, /source backup FAILED \(stop-app\)/);
    const sleepers = await runProcess(['pgrep', '-xf', hang]);
    assert.equal(sleepers.code, 1, "the stop command's process group was killed");
  },
);

test('a failing start command ends in an APP DOWN failure and alert', { skip: NEEDS_ROOT }, async (t) => {
  const s = await setup('badstart', { start: 'exit 3', startTimeout: '3s' });
  t.after(() => s.app.kill());
  const before = smtp.messages.length;
  const r = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /APP DOWN/);
  const mails = await smtp.waitFor(before + 1);
  assert.match(mails.at(-1)!.subject, /APP DOWN/);
  assert.equal(s.app.isRunning(), false);
  assert.ok(existsSync(join(s.state, 'app-stopped.json')), 'the stop record stays until the app is back');
});

test('an unreadable data path is refused before the app is stopped', { skip: NEEDS_ROOT }, async (t) => {
  const s = await setup('missingpath', { extraPath: '/nonexistent/baton-test' });
  t.after(() => s.app.kill());
  const pid = await readFile(s.app.pidFile, 'utf8');
  const r = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /preflight: data: path \/nonexistent\/baton-test is not readable/);
  assert.equal(await readFile(s.app.pidFile, 'utf8'), pid, 'the app was never stopped');
  assert.deepEqual(await generations(s.handoverData), []);
});

test('a run killed while the app is down is repaired by source recover', { skip: NEEDS_ROOT }, async (t) => {
  const base = await setup('killed');
  t.after(() => base.app.kill());
  // the stop command stops the app, then kills baton itself (its parent) with SIGKILL
  const cfg = (await readFile(base.config, 'utf8')).replace(
    /stop: .*/,
    `stop: ${JSON.stringify(`${base.app.stopCmd}; kill -9 $PPID`)}`,
  );
  await writeFile(base.config, cfg);
  const r = await runBaton(['source', 'backup', '--config', base.config]);
  assert.equal(r.signal, 'SIGKILL', show(r));
  assert.equal(base.app.isRunning(), false, 'the killed run left the app down');
  assert.ok(existsSync(join(base.state, 'app-stopped.json')));
  const rec = await runBaton(['source', 'recover', '--config', base.config]);
  assert.equal(rec.code, 0, show(rec));
  assert.match(rec.stdout, /started the app again/);
  assert.ok(base.app.isRunning());
  assert.equal(existsSync(join(base.state, 'app-stopped.json')), false);
  const again = await runBaton(['source', 'recover', '--config', base.config]);
  assert.match(again.stdout, /nothing to start/);
});

test('two runs at once: the second exits 75 and touches nothing', { skip: NEEDS_ROOT }, async (t) => {
  const s = await setup('overlap');
  t.after(() => s.app.kill());
  const cfg = (await readFile(s.config, 'utf8')).replace(
    /stop: (.*)/,
    (_m, cmd: string) => `stop: ${JSON.stringify(`sleep 3; ${JSON.parse(cmd) as string}`)}`,
  );
  await writeFile(s.config, cfg);
  const first = runBaton(['source', 'backup', '--config', s.config]);
  await new Promise((res) => setTimeout(res, 1500));
  const second = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(second.code, 75, show(second));
  assert.match(second.stderr, /another run holds/);
  const r1 = await first;
  assert.equal(r1.code, 0, show(r1));
  assert.equal((await generations(s.handoverData)).length, 1);
});

test('--dry-run prints the plan and changes nothing', { skip: NEEDS_ROOT }, async (t) => {
  const s = await setup('dry');
  t.after(() => s.app.kill());
  const pid = await readFile(s.app.pidFile, 'utf8');
  const r = await runBaton(['source', 'backup', '--dry-run', '--config', s.config]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /nothing was changed/);
  assert.match(r.stdout, /stop app: /);
  assert.match(r.stdout, /first generation \(full copy\)/);
  assert.equal(existsSync(s.handoverData), false);
  assert.equal(existsSync(s.state), false);
  assert.equal(await readFile(s.app.pidFile, 'utf8'), pid);
});
