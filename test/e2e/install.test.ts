/**
 * `baton install` end to end: the built CLI as root, into a temp root (config dirs, --unit-dir,
 * --cron-dir) with its own users batonInstData / batonInstLogs; then a real sshd login through the
 * installed authorized_keys lines (plain key with from=, then certificates), and the generated units
 * checked by `systemd-analyze verify`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { makeKeyPair, makeUserCA, signUserKey, type KeyPair, needsRootOrSkipFile } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('install', 'creates users batonInstData/batonInstLogs');

const DATA_USER = 'batonInstData';
const LOGS_USER = 'batonInstLogs';

let tmp: string;
let sourceConfig: string;
let units: string;
let sinkKey: KeyPair;
let sshd: Sshd | undefined;

async function removeUser(name: string): Promise<void> {
  const r = await runProcess(['getent', 'passwd', name], { timeoutMs: 10_000 });
  if (r.code === 0) await runProcess(['/usr/sbin/userdel', '-r', name], { timeoutMs: 30_000 });
}

async function shadowPassword(name: string): Promise<string | undefined> {
  const r = await runProcess(['getent', 'shadow', name], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.split(':')[1] : undefined;
}

async function passwd(name: string): Promise<{ uid: number; gid: number; home: string } | undefined> {
  const r = await runProcess(['getent', 'passwd', name], { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' };
}

async function modeOwner(path: string): Promise<[string, number, number]> {
  const st = await stat(path);
  return [(st.mode & 0o7777).toString(8), st.uid, st.gid];
}

before(async () => {
  if (NEEDS_ROOT) return;
  // An earlier run killed halfway may have left them.
  await removeUser(DATA_USER);
  await removeUser(LOGS_USER);
  tmp = await mkdtemp(join(tmpdir(), 'baton-install-'));
  // The stream users' gate must reach the config below it.
  await chmod(tmp, 0o755);
  units = join(tmp, 'units');
  sinkKey = await makeKeyPair(join(tmp, 'sink-keys'), 'sink-data');
  sourceConfig = join(tmp, 'source.yaml');
  await writeFile(
    sourceConfig,
    `name: inst-src
stateDir: ${tmp}/root/var/lib/baton/state
app: { stop: "true", start: "true" }
streams:
  data:
    paths: [${tmp}/app]
    handover: ${tmp}/root/var/lib/baton/handover/data
    user: ${DATA_USER}
    store: ${tmp}/root/var/backups/baton/source-store
  logs:
    paths: [${tmp}/app]
    handover: ${tmp}/root/var/lib/baton/handover/logs
    user: ${LOGS_USER}
`,
    { mode: 0o644 },
  );
});

after(async () => {
  if (NEEDS_ROOT) return;
  await sshd?.stop();
  await removeUser(DATA_USER);
  await removeUser(LOGS_USER);
  await rm(tmp, { recursive: true, force: true });
});

const sourceArgs = (...more: string[]) => [
  'install',
  'source',
  '--config',
  sourceConfig,
  '--unit-dir',
  units,
  '--sink-key-data',
  sinkKey.publicKeyFile,
  '--from',
  '127.0.0.1',
  ...more,
];

function actionLines(r: RunResult): string[] {
  return r.stdout.split('\n').filter((l) => /^ {2}(create|update|ok) /.test(l));
}

async function ssh(key: string, user: string, command: string, cert?: string): Promise<RunResult> {
  assert.ok(sshd);
  return runProcess(
    [
      'ssh',
      '-F',
      '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${sshd.knownHostsFile}`,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      '-i',
      key,
      ...(cert ? ['-o', `CertificateFile=${cert}`] : []),
      '-p',
      String(sshd.port),
      `${user}@127.0.0.1`,
      command,
    ],
    { timeoutMs: 30_000, captureStdout: true },
  );
}

describe('baton install source', { skip: NEEDS_ROOT }, () => {
  test('--print shows the plan and every file, and changes nothing', async () => {
    const r = await runBaton([...sourceArgs('--print')]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /nothing is changed/);
    assert.ok(
      actionLines(r).includes(
        `  create  user  ${DATA_USER}  (system user, home /home/${DATA_USER}, shell /bin/sh, password '*' (no password; key logins only))`,
      ),
      show(r),
    );
    assert.match(r.stdout, new RegExp(`--- ${units}/baton-source-backup\\.service \\(0644 root\\)`));
    assert.match(r.stdout, /^ExecStart=.* source backup --config /m);
    assert.match(r.stdout, /^OnCalendar=\*-\*-\* 02:15:00$/m);
    assert.match(
      r.stdout,
      new RegExp(
        `^restrict,from="127\\.0\\.0\\.1",command=".* gate data --config ${sourceConfig}" ssh-ed25519 `,
        'm',
      ),
    );
    assert.match(r.stdout, /--print: \d+ change\(s\) would be made/);
    assert.match(r.stdout, /no key for batonInstLogs given: put exactly this line/);
    assert.equal(await passwd(DATA_USER), undefined, 'no user created');
    assert.equal(existsSync(join(tmp, 'root')), false, 'no directory created');
    assert.equal(existsSync(units), false, 'no unit written');
  });

  test('a real install creates users, dirs, authorized_keys and units with the right owners and modes', async () => {
    const r = await runBaton(sourceArgs());
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /done: \d+ change\(s\) made/);
    const data = await passwd(DATA_USER);
    const logs = await passwd(LOGS_USER);
    assert.ok(data && logs, 'both users exist');
    assert.equal(data.home, `/home/${DATA_USER}`);
    assert.equal(await shadowPassword(DATA_USER), '*', 'not locked: key logins work without PAM');
    assert.equal(await shadowPassword(LOGS_USER), '*');
    const root = join(tmp, 'root');
    assert.deepEqual(await modeOwner(join(root, 'var/lib/baton')), ['755', 0, 0]);
    assert.deepEqual(await modeOwner(join(root, 'var/lib/baton/state')), ['700', 0, 0]);
    assert.deepEqual(await modeOwner(join(root, 'var/lib/baton/handover/data')), ['750', data.uid, data.gid]);
    assert.deepEqual(await modeOwner(join(root, 'var/lib/baton/handover/logs')), ['750', logs.uid, logs.gid]);
    assert.deepEqual(await modeOwner(join(root, 'var/backups/baton/source-store')), [
      '750',
      data.uid,
      data.gid,
    ]);
    const keys = join(data.home, '.ssh', 'authorized_keys');
    assert.deepEqual(await modeOwner(join(data.home, '.ssh')), ['700', data.uid, data.gid]);
    assert.deepEqual(await modeOwner(keys), ['600', data.uid, data.gid]);
    assert.equal(
      await readFile(keys, 'utf8'),
      `restrict,from="127.0.0.1",command="${[process.execPath, ...NODE_FLAGS, BATON_MAIN].join(' ')} gate data --config ${sourceConfig}" ${sinkKey.publicKey}\n`,
    );
    assert.equal(
      existsSync(join(logs.home, '.ssh', 'authorized_keys')),
      false,
      'no key given for logs: nothing written',
    );
    assert.deepEqual((await readdir(units)).sort(), [
      'baton-source-backup.service',
      'baton-source-backup.timer',
      'baton-source-failure@.service',
      'baton-source-recover.service',
      'baton-source-verify.service',
      'baton-source-verify.timer',
    ]);
    assert.match(
      await readFile(join(units, 'baton-source-verify.service'), 'utf8'),
      new RegExp(`^ExecStart=.* verify --all --deep --config ${sourceConfig}$`, 'm'),
    );
    assert.match(
      await readFile(join(units, 'baton-source-backup.service'), 'utf8'),
      /^OnFailure=baton-source-failure@%n\.service$/m,
    );
    assert.deepEqual(await modeOwner(join(units, 'baton-source-backup.service')), ['644', 0, 0]);
  });

  test('a second run reports nothing to do and rewrites nothing', async () => {
    const files = [join(units, 'baton-source-backup.service'), `/home/${DATA_USER}/.ssh/authorized_keys`];
    const before = await Promise.all(files.map(async (f) => (await stat(f)).mtimeMs));
    const r = await runBaton(sourceArgs());
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /nothing to do: everything is installed already/);
    assert.deepEqual(
      actionLines(r).filter((l) => !l.startsWith('  ok ')),
      [],
      'every action is "ok"',
    );
    assert.deepEqual(await Promise.all(files.map(async (f) => (await stat(f)).mtimeMs)), before);
  });

  test('not root: --print still works, installing is refused with exit 2', async () => {
    const user = await passwd(LOGS_USER);
    assert.ok(user);
    const asUser = (...more: string[]) =>
      runProcess(
        // (no --sink-key-data: the key sits in a 0700 dir of root's)
        [
          process.execPath,
          BATON_MAIN,
          'install',
          'source',
          '--config',
          sourceConfig,
          '--unit-dir',
          units,
          ...more,
        ],
        {
          uid: user.uid,
          gid: user.gid,
          env: { PATH: process.env.PATH, HOME: user.home },
          timeoutMs: 60_000,
          captureStdout: true,
        },
      );
    const print = await asUser('--print');
    assert.equal(print.code, 0, show(print));
    assert.match(print.stdout, /nothing is changed/);
    const install = await asUser();
    assert.equal(install.code, 2, show(install));
    assert.equal(
      install.stderr.trim().split('\n').at(-1),
      'baton: install: must run as root to create users, directories and units (or use --print)',
    );
  });

  test('the sink logs in through the installed line: only the gate answers', async () => {
    sshd = await startSshd({ dir: tmp });
    const list = await ssh(sinkKey.privateKey, DATA_USER, 'list');
    assert.equal(list.code, 0, `${list.stderr}\n${sshd.logs()}`);
    assert.deepEqual(JSON.parse(list.stdout), { source: 'inst-src', stream: 'data', generations: [] });
    const shell = await ssh(sinkKey.privateKey, DATA_USER, 'id');
    assert.equal(shell.code, 1, 'the gate refuses anything else');
    assert.match(shell.stderr, /refused/);
  });

  test('--ca-key replaces the lines with cert-authority ones: certificates get in, the bare key does not', async () => {
    const ca = await makeUserCA(join(tmp, 'ca'));
    const r = await runBaton([
      'install',
      'source',
      '--config',
      sourceConfig,
      '--unit-dir',
      units,
      '--ca-key',
      ca.publicKeyFile,
    ]);
    assert.equal(r.code, 0, show(r));
    assert.ok(
      actionLines(r).some((l) => l.startsWith(`  update  file  /home/${DATA_USER}/.ssh/authorized_keys`)),
      show(r),
    );
    assert.ok(
      actionLines(r).some((l) => l.startsWith(`  create  file  /home/${LOGS_USER}/.ssh/authorized_keys`)),
      show(r),
    );
    assert.match(
      await readFile(`/home/${LOGS_USER}/.ssh/authorized_keys`, 'utf8'),
      new RegExp(
        `^cert-authority,principals="${LOGS_USER}",restrict,command=".* gate logs --config ${sourceConfig}" ssh-ed25519 `,
      ),
    );
    const logsKey = await makeKeyPair(join(tmp, 'sink-keys'), 'sink-logs');
    const cert = await signUserKey(ca, logsKey.publicKeyFile, { principals: [LOGS_USER] });
    const list = await ssh(logsKey.privateKey, LOGS_USER, 'list', cert.certificateFile);
    assert.equal(list.code, 0, `${list.stderr}\n${sshd?.logs() ?? ''}`);
    assert.equal((JSON.parse(list.stdout) as { stream: string }).stream, 'logs');
    const wrongPrincipal = await ssh(logsKey.privateKey, DATA_USER, 'list', cert.certificateFile);
    assert.equal(wrongPrincipal.code, 255, 'a certificate for batonInstLogs does not open batonInstData');
    const bare = await ssh(sinkKey.privateKey, DATA_USER, 'list');
    assert.equal(bare.code, 255, 'the old plain key no longer gets in');
  });

  test('--cron writes /etc/cron.d-style file instead of units', async () => {
    const cronDir = join(tmp, 'cron.d');
    const r = await runBaton([
      'install',
      'source',
      '--config',
      sourceConfig,
      '--cron',
      '--cron-dir',
      cronDir,
      '--on-calendar',
      '03:45',
      '--print',
    ]);
    assert.equal(r.code, 0, show(r));
    assert.match(
      r.stdout,
      new RegExp(`^45 3 \\* \\* \\* root .* source backup --config ${sourceConfig}$`, 'm'),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^0 6 \\* \\* 0 root nice -n 19 ionice -c 3 .* verify --all --deep --config ${sourceConfig}$`,
        'm',
      ),
    );
    assert.equal(existsSync(cronDir), false);
  });

  test('a bad key file -> exit 2, one line naming the option, nothing changed', async () => {
    const bad = join(tmp, 'bad.pub');
    await writeFile(bad, `restrict ${sinkKey.publicKey}\n`);
    const before = await readFile(`/home/${DATA_USER}/.ssh/authorized_keys`, 'utf8');
    const r = await runBaton([
      'install',
      'source',
      '--config',
      sourceConfig,
      '--unit-dir',
      units,
      '--sink-key-data',
      bad,
    ]);
    assert.equal(r.code, 2, show(r));
    const last = r.stderr.trim().split('\n').at(-1) ?? '';
    assert.match(last, /^baton: install: --sink-key-data .*bad\.pub: .*not a public key type/);
    assert.equal(await readFile(`/home/${DATA_USER}/.ssh/authorized_keys`, 'utf8'), before);
  });
});

describe('baton install sink', { skip: NEEDS_ROOT }, () => {
  let sinkConfig: string;
  let sinkUnits: string;
  before(async () => {
    sinkUnits = join(tmp, 'sink-units');
    sinkConfig = join(tmp, 'sink.yaml');
    await writeFile(
      sinkConfig,
      `store: ${tmp}/sink/store
stateDir: ${tmp}/sink/state
sources:
  - name: inst-src
    host: 127.0.0.1
    port: 2222
    knownHosts: ${tmp}/sink/known_hosts
    streams:
      data: { user: ${DATA_USER}, identity: ${tmp}/sink/keys/inst-data, generations: 3 }
      logs: { user: ${LOGS_USER}, identity: ${tmp}/sink/keys/inst-logs, generations: 3 }
`,
    );
  });

  test('key pairs, dirs and pull units; prints the keys and how to pin the host key; second run: nothing to do', async () => {
    const args = ['install', 'sink', '--config', sinkConfig, '--unit-dir', sinkUnits, '--baton', BATON_MAIN];
    const r = await runBaton(args);
    assert.equal(r.code, 0, show(r));
    const key = join(tmp, 'sink/keys/inst-data');
    assert.deepEqual(await modeOwner(key), ['600', 0, 0]);
    assert.deepEqual(await modeOwner(join(tmp, 'sink/keys')), ['700', 0, 0]);
    assert.deepEqual(await modeOwner(join(tmp, 'sink/store')), ['750', 0, 0]);
    assert.deepEqual(await modeOwner(join(tmp, 'sink/store/.baton-store')), ['644', 0, 0]);
    assert.match(await readFile(join(tmp, 'sink/store/.baton-store'), 'utf8'), /baton sink store/);
    assert.deepEqual(await modeOwner(join(tmp, 'sink/state')), ['700', 0, 0]);
    const pub = (await readFile(`${key}.pub`, 'utf8')).trim();
    assert.ok(r.stdout.includes(`public key: ${pub}`), show(r));
    assert.ok(r.stdout.includes(`restrict,command="baton gate data --config /etc/baton/source.yaml" ${pub}`));
    assert.match(r.stdout, /ssh-keyscan -p 2222 -t ed25519 127\.0\.0\.1 > /);
    assert.match(r.stdout, /COMPARE/);
    const service = await readFile(join(sinkUnits, 'baton-sink-pull-logs.service'), 'utf8');
    assert.match(service, new RegExp(`^ExecStart=${BATON_MAIN} sink pull logs --config ${sinkConfig}$`, 'm'));
    assert.match(
      await readFile(join(sinkUnits, 'baton-sink-pull-logs.timer'), 'utf8'),
      /^OnCalendar=\*-\*-\* 04:30:00$/m,
    );

    const again = await runBaton(args);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stdout, /nothing to do: everything is installed already/);
    assert.equal((await readFile(`${key}.pub`, 'utf8')).trim(), pub, 'the key pair is kept');
  });

  test('the generated units pass systemd-analyze verify', async (t) => {
    const which = await runProcess(['sh', '-c', 'command -v systemd-analyze'], { timeoutMs: 10_000 });
    if (which.code !== 0) {
      const reason = 'systemd-analyze not installed (Debian package "systemd")';
      process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const all = [
      ...(await readdir(units)).map((f) => join(units, f)),
      ...(await readdir(sinkUnits)).map((f) => join(sinkUnits, f)),
    ];
    // source: backup .service/.timer, recover, verify .service/.timer, failure@ template;
    // sink: pull .service/.timer per stream, verify .service/.timer, failure@ template
    assert.equal(all.length, 13);
    assert.equal(all.filter((f) => f.endsWith('@.service')).length, 2, 'the templates are verified too');
    const r = await runProcess(['systemd-analyze', 'verify', ...all], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    // Unknown keys and bad values are only warnings: none may mention our units.
    const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes('baton-'));
    assert.deepEqual(ours, []);
  });
});
