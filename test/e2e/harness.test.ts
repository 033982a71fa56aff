/**
 * The end-to-end harness itself: a real sshd with forced commands and user certificates, and
 * the fake app server. If these fail, every e2e test built on them would fail confusingly.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { createFakeApp } from '../helpers/fake-app.js';
import { sshClientArgs, startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  makeKeyPair,
  makeUserCA,
  signUserKey,
  skipUnlessRoot,
  writeAuthorizedKeys,
} from '../helpers/users.js';

const USER = 'batontestuser';

/** ssh keeps the first value of an option, so a different known_hosts replaces the helper's, not follows it. */
function ssh(
  sshd: Sshd,
  identity: string,
  remote: string[],
  knownHostsFile = sshd.knownHostsFile,
): Promise<RunResult> {
  return runProcess(
    ['ssh', ...sshClientArgs({ ...sshd, knownHostsFile }, identity), `${USER}@127.0.0.1`, ...remote],
    {
      timeoutMs: 20_000,
    },
  );
}

function explain(r: RunResult, sshd: Sshd): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nsshd log:\n${sshd.logs().split('\n').slice(-15).join('\n')}`;
}

test('ssh harness: real sshd, real user, forced commands, certificates, pinned host key', async (t) => {
  if (skipUnlessRoot(t)) return;
  const work = await mkdtemp(join(tmpdir(), 'baton-harness-'));
  t.after(() => rm(work, { recursive: true, force: true }));

  const globalCA = await makeUserCA(work, 'global_ca');
  const lineCA = await makeUserCA(work, 'line_ca');
  const sshd = await startSshd({ trustedUserCAKeys: globalCA.publicKey });
  t.after(() => sshd.stop());

  const user = await ensureUser(USER);
  const key = await makeKeyPair(work, 'plain');
  const stranger = await makeKeyPair(work, 'stranger');
  await writeAuthorizedKeys(user, [
    `restrict,command="echo hello-$SSH_ORIGINAL_COMMAND" ${key.publicKey}`,
    `cert-authority,principals="${USER}",restrict,command="echo cert-$SSH_ORIGINAL_COMMAND" ${lineCA.publicKey}`,
  ]);

  await t.test('a key with a forced command runs that command with SSH_ORIGINAL_COMMAND', async () => {
    const r = await ssh(sshd, key.privateKey, ['world']);
    assert.equal(r.code, 0, explain(r, sshd));
    assert.equal(r.stdout, 'hello-world\n');
    assert.match(sshd.logs(), new RegExp(`Accepted publickey for ${USER} from 127\\.0\\.0\\.1`));
  });

  await t.test('a key that is not authorized is refused', async () => {
    const r = await ssh(sshd, stranger.privateKey, ['world']);
    assert.equal(r.code, 255, explain(r, sshd));
    assert.match(r.stderr, /Permission denied/);
    assert.equal(r.stdout, '');
  });

  await t.test(
    'a certificate from a cert-authority line logs in under that line’s forced command',
    async () => {
      const certKey = await makeKeyPair(work, 'line_cert');
      await signUserKey(lineCA, certKey.publicKeyFile, { principals: [USER] });
      const r = await ssh(sshd, certKey.privateKey, ['x']);
      assert.equal(r.code, 0, explain(r, sshd));
      assert.equal(r.stdout, 'cert-x\n');
    },
  );

  await t.test('a certificate for another principal is refused by the cert-authority line', async () => {
    const certKey = await makeKeyPair(work, 'line_cert_other');
    await signUserKey(lineCA, certKey.publicKeyFile, { principals: ['someoneelse'] });
    const r = await ssh(sshd, certKey.privateKey, ['x']);
    assert.equal(r.code, 255, explain(r, sshd));
    assert.match(r.stderr, /Permission denied/);
  });

  await t.test('an expired certificate is refused', async () => {
    const certKey = await makeKeyPair(work, 'line_cert_expired');
    await signUserKey(lineCA, certKey.publicKeyFile, { principals: [USER], validity: '-2h:-1h' });
    const r = await ssh(sshd, certKey.privateKey, ['x']);
    assert.equal(r.code, 255, explain(r, sshd));
  });

  await t.test(
    'a certificate from the TrustedUserCAKeys CA logs in without an authorized_keys line',
    async () => {
      const certKey = await makeKeyPair(work, 'global_cert');
      const cert = await signUserKey(globalCA, certKey.publicKeyFile, { principals: [USER] });
      assert.equal(cert.certificateFile, `${certKey.privateKey}-cert.pub`);
      const r = await ssh(sshd, certKey.privateKey, ['echo', 'global-cert-ok']);
      assert.equal(r.code, 0, explain(r, sshd));
      assert.equal(r.stdout, 'global-cert-ok\n');
    },
  );

  await t.test('a wrong host key in known_hosts is refused before authentication', async () => {
    const otherHost = await makeKeyPair(work, 'other_host');
    const wrongKnownHosts = join(work, 'wrong_known_hosts');
    await writeFile(wrongKnownHosts, `[127.0.0.1]:${sshd.port} ${otherHost.publicKey}\n`);
    const r = await ssh(sshd, key.privateKey, ['world'], wrongKnownHosts);
    assert.equal(r.code, 255, explain(r, sshd));
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    assert.equal(r.stdout, '');
  });

  await t.test('an empty known_hosts is refused (never "accept new")', async () => {
    const empty = join(work, 'empty_known_hosts');
    await writeFile(empty, '');
    const r = await ssh(sshd, key.privateKey, ['world'], empty);
    assert.equal(r.code, 255, explain(r, sshd));
    assert.match(r.stderr, /Host key verification failed/);
    assert.equal(await readFile(empty, 'utf8'), '', 'the host key was not added');
  });
});

test('sshd helper: stop() kills the server and removes its temp dir', async (t) => {
  if (skipUnlessRoot(t, 'runs sshd')) return;
  const sshd = await startSshd();
  t.after(() => sshd.stop());
  assert.match(
    await readFile(sshd.knownHostsFile, 'utf8'),
    new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 `),
  );
  await sshd.stop();
  await assert.rejects(readFile(sshd.knownHostsFile), { code: 'ENOENT' });
  const probe = await runProcess(
    [
      'ssh',
      '-p',
      String(sshd.port),
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=5',
      'nobody@127.0.0.1',
      'true',
    ],
    { timeoutMs: 10_000 },
  );
  assert.match(probe.stderr, /Connection refused/);
});

test('fake app: starts in the background, is healthy, keeps writing, stops, restarts after a crash', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-fake-app-'));
  const app = createFakeApp(dir);
  t.after(async () => {
    app.kill();
    await rm(dir, { recursive: true, force: true });
  });
  const sh = (cmd: string): Promise<RunResult> => runProcess(cmd, { timeoutMs: 20_000 });

  assert.equal(app.isRunning(), false);
  assert.notEqual((await sh(app.healthCmd)).code, 0, 'not healthy before start');

  const start = await sh(app.startCmd);
  assert.equal(start.code, 0, start.stderr);
  assert.ok(start.durationMs < 10_000);
  assert.equal(app.isRunning(), true);
  assert.equal((await sh(app.healthCmd)).code, 0);
  const pid = await readFile(app.pidFile, 'utf8');

  const first = await readFile(join(app.dataDir, 'counter.txt'), 'utf8');
  await new Promise((r) => setTimeout(r, 150));
  const later = await readFile(join(app.dataDir, 'counter.txt'), 'utf8');
  assert.ok(
    Number(later) > Number(first),
    `counter advances while running (${first.trim()} → ${later.trim()})`,
  );
  assert.match(await readFile(join(app.logDir, 'app.log'), 'utf8'), / tick \d+\n/);

  const again = await sh(app.startCmd);
  assert.equal(again.code, 0, 'start is idempotent');
  assert.equal(await readFile(app.pidFile, 'utf8'), pid, 'no second instance');

  const stop = await sh(app.stopCmd);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(app.isRunning(), false);
  assert.notEqual((await sh(app.healthCmd)).code, 0);
  const frozen = await readFile(join(app.dataDir, 'counter.txt'), 'utf8');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await readFile(join(app.dataDir, 'counter.txt'), 'utf8'), frozen, 'nothing writes after stop');
  assert.match(await readFile(join(app.logDir, 'app.log'), 'utf8'), /stopped after \d+ ticks\n$/);
  assert.equal((await sh(app.stopCmd)).code, 0, 'stopping a stopped app is fine');

  // A crash leaves a stale pid file behind; start must not mistake it for a running app.
  assert.equal((await sh(app.startCmd)).code, 0);
  app.kill();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(app.isRunning(), false);
  const restart = await sh(app.startCmd);
  assert.equal(restart.code, 0, restart.stderr);
  assert.equal(app.isRunning(), true);
  assert.equal((await sh(app.healthCmd)).code, 0);
  assert.equal((await sh(app.stopCmd)).code, 0);
});
