/**
 * A caller holding a stream key abuses the gate over a real sshd (issue "Faults and hostile input",
 * case 28; the ssh half of hostile-source.test.ts): a shell, port and agent forwarding, uploads and
 * deletes through rsync, reading the other stream, acks of what is not pending or without proof of
 * receipt. The gate refuses each one, logs it, and the source keeps every file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { show } from '../helpers/cli.js';
import { chownTree, makeGateFixture, startE2e, type E2e, type GateFixture } from '../helpers/e2e.js';
import { evilMarker } from '../helpers/evil-marker.js';
import {
  ackDialogue,
  copyGeneration,
  sha256,
  sha256File,
  writeGeneration,
  type GenerationOptions,
} from '../helpers/gate-fixtures.js';
import { generationIds as ids } from '../helpers/source-setup.js';
import { sshClientArgs, type Sshd } from '../helpers/sshd.js';
import { needsRootOrSkipFile, type KeyPair, type TestUser } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('hostile-source-ssh', 'creates users, runs sshd');

const SOURCE = 'evil';
const DATA_USER = 'bzJEvilData';
const LOGS_USER = 'bzJEvilLogs';

let e: E2e;
let fx: GateFixture;
let root: string;
let sshd: Sshd;
let dataUser: TestUser;
let logsUser: TestUser;
let dataKey: KeyPair;
let H: GateFixture['H'];

const nextId = () => fx.nextId();
const stage = (opts: GenerationOptions = {}) => fx.stage(opts);

/** A path nothing may ever create: hostile commands aim at it. */
const marker = evilMarker(() => [dataUser.home, root, H.sinkStore, H.sinkData, H.sinkState, H.data]);
const EVIL_ABS = marker.abs;
const assertNoMarker = () => marker.assertNone();

before(async () => {
  if (NEEDS_ROOT) return;
  e = await startE2e({
    prefix: 'baton-hostile-ssh-',
    users: { data: DATA_USER, logs: LOGS_USER },
    keys: ['data', 'logs'],
  });
  ({ root, sshd } = e);
  dataUser = e.user('data');
  logsUser = e.user('logs');
  dataKey = e.key('data');
  fx = await makeGateFixture(e, { source: SOURCE, baseDay: Date.UTC(2026, 0, 1), logs: true });
  H = fx.H;
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
  await marker.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// gate abuse with the real sshd (issue case 28)

function ssh(key: string, user: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return runProcess(
    [
      'ssh',
      ...sshClientArgs(sshd, key),
      '-o',
      'ControlMaster=no',
      ...args.slice(0, -1),
      `${user}@127.0.0.1`,
      ...args.slice(-1),
    ],
    { timeoutMs, captureStdout: true },
  );
}

/** The gate refused: non-zero, its one line, and its JSON log record (on the caller's stderr). */
function assertGateRefused(r: RunResult, reason: RegExp): void {
  assert.notEqual(r.code, 0, show(r));
  assert.match(r.stderr, /^baton gate: refused: /m);
  const records = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) =>
      z.object({ msg: z.string(), level: z.string(), reason: z.string().optional() }).parse(JSON.parse(l)),
    );
  const refused = records.find((rec) => rec.msg === 'gate refused');
  assert.ok(refused, `no JSON log line of the refusal in: ${r.stderr}`);
  assert.equal(refused.level, 'warn');
  assert.match(refused.reason ?? '', reason);
}

let tcpTarget: { server: Server; connections: number; port: number } | undefined;
async function startTcpTarget(): Promise<{ server: Server; connections: number; port: number }> {
  const t = { server: createServer(), connections: 0, port: 0 };
  t.server.on('connection', (s) => {
    t.connections++;
    s.end('secret service\n');
  });
  await new Promise<void>((resolve) => t.server.listen(0, '127.0.0.1', resolve));
  const addr = t.server.address();
  t.port = typeof addr === 'object' && addr ? addr.port : 0;
  return t;
}

test('a shell, with or without a command, is refused and logged', { skip: NEEDS_ROOT }, async () => {
  const login = await ssh(dataKey.privateKey, DATA_USER, ['-T', '']);
  assertGateRefused(login, /no command given/);
  const shell = await ssh(dataKey.privateKey, DATA_USER, ['sh -c id']);
  assertGateRefused(shell, /not an allowed command/);
  assert.doesNotMatch(shell.stdout, /uid=/);
  const chained = await ssh(dataKey.privateKey, DATA_USER, [`list; touch ${EVIL_ABS}`]);
  assertGateRefused(chained, /not an allowed command/);
  const newline = await ssh(dataKey.privateKey, DATA_USER, [`list\ntouch ${EVIL_ABS}`]);
  assertGateRefused(newline, /control character/);
  assertNoMarker();
});

test('port forwarding (-L, -W, -R) is refused by the key restrictions', { skip: NEEDS_ROOT }, async () => {
  tcpTarget = await startTcpTarget();
  try {
    const w = await ssh(dataKey.privateKey, DATA_USER, ['-W', `127.0.0.1:${tcpTarget.port}`, ''], 15_000);
    assert.notEqual(w.code, 0, show(w));
    assert.match(w.stderr, /administratively prohibited|open failed/i);
    assert.match(
      sshd.logs(),
      new RegExp(`refused local port forward: .*target 127\\.0\\.0\\.1 port ${tcpTarget.port}`),
    );
    const rfwd = await ssh(
      dataKey.privateKey,
      DATA_USER,
      ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `0:127.0.0.1:${tcpTarget.port}`, ''],
      15_000,
    );
    assert.notEqual(rfwd.code, 0, show(rfwd));
    assert.match(rfwd.stderr, /remote port forwarding failed/i);

    // -L: the client listens; the tunnel it opens on a connection is refused by sshd.
    const local = await startTcpTarget(); // only to reserve a free port
    const lport = local.port;
    await new Promise<void>((resolve) => local.server.close(() => resolve()));
    const tunnel = spawn(
      'ssh',
      [
        ...sshClientArgs(sshd, dataKey.privateKey),
        '-N',
        '-L',
        `${lport}:127.0.0.1:${tcpTarget.port}`,
        `${DATA_USER}@127.0.0.1`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let tunnelErr = '';
    tunnel.stderr.on('data', (c: Buffer) => (tunnelErr += c.toString()));
    try {
      let got = '';
      for (let i = 0; i < 100 && got === ''; i++) {
        got = await new Promise<string>((resolve) => {
          const s = connect({ host: '127.0.0.1', port: lport });
          let data = '';
          s.on('data', (c: Buffer) => (data += c.toString()));
          s.on('error', () => resolve(''));
          s.on('close', () => resolve(data === '' ? 'closed' : data));
        });
        if (got === '') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(got, 'closed', `the tunnel delivered: ${got}`);
      await new Promise((r) => setTimeout(r, 200));
      assert.match(tunnelErr, /administratively prohibited|open failed/i);
    } finally {
      tunnel.kill('SIGTERM');
    }
    assert.equal(tcpTarget.connections, 0, 'no forwarded connection reached the target');
  } finally {
    await new Promise<void>((resolve) => tcpTarget?.server.close(() => resolve()));
  }
});

/** Processes running as `uid` whose environment holds `SSH_ORIGINAL_COMMAND`, with their environments. */
async function sessionEnvs(uid: number): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = await readFile(`/proc/${name}/status`, 'utf8');
      if (!new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(status)) continue;
      const env = (await readFile(`/proc/${name}/environ`, 'latin1')).split('\0');
      if (env.some((e) => e.startsWith('SSH_ORIGINAL_COMMAND='))) out.set(Number(name), env);
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

test('agent forwarding (-A) never reaches the gate or rsync', { skip: NEEDS_ROOT }, async () => {
  const g = await stage();
  const sock = join(root, 'agent.sock');
  const abort = new AbortController();
  const agent = runProcess(['ssh-agent', '-D', '-a', sock], { signal: abort.signal, killGraceMs: 1000 });
  try {
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    const add = await runProcess(['ssh-add', dataKey.privateKey], {
      env: { ...process.env, SSH_AUTH_SOCK: sock },
      timeoutMs: 10_000,
    });
    assert.equal(add.code, 0, add.stderr);
    // A pull whose client never speaks keeps the session (gate → rsync) open while we look.
    const session = spawn(
      'ssh',
      [
        ...sshClientArgs(sshd, dataKey.privateKey),
        '-A',
        `${DATA_USER}@127.0.0.1`,
        `rsync --server --sender -re.iLsfxCIvu . ${g.id}/`,
      ],
      { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, SSH_AUTH_SOCK: sock } },
    );
    try {
      let envs = new Map<number, string[]>();
      for (let i = 0; i < 200 && envs.size === 0; i++) {
        envs = await sessionEnvs(dataUser.uid);
        if (envs.size === 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(envs.size > 0, 'the forced command is running');
      for (const [pid, env] of envs) {
        assert.equal(
          env.some((e) => e.startsWith('SSH_AUTH_SOCK=')),
          false,
          `pid ${pid} got a forwarded agent`,
        );
      }
      const agentDirs = (await readdir('/tmp')).filter((n) => n.startsWith('ssh-'));
      for (const d of agentDirs) {
        const st = await lstat(join('/tmp', d)).catch(() => undefined);
        assert.notEqual(st?.uid, dataUser.uid, `an agent socket dir /tmp/${d} for the stream user`);
      }
    } finally {
      session.kill('SIGTERM');
    }
  } finally {
    abort.abort();
    await agent;
    await rm(g.dir, { recursive: true, force: true });
  }
});

test(
  'an upload, --remove-source-files, --delete and reading the other stream are refused; source files stay',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage();
    const logsGen = await writeGeneration(H.logs, nextId(), { source: SOURCE, stream: 'logs' });
    await chownTree(logsGen.dir, logsUser);
    const rsh = ['ssh', ...sshClientArgs(sshd, dataKey.privateKey), '-o', 'ControlMaster=no'].join(' ');
    const rsync = (...args: string[]) => runProcess(['rsync', '-e', rsh, ...args], { timeoutMs: 30_000 });
    const out = join(root, 'abuse');
    await mkdir(out);
    const local = join(out, 'upload.txt');
    await writeFile(local, 'evil');

    const up = await rsync(local, `${DATA_USER}@127.0.0.1:${g.id}/tree/upload.txt`);
    assert.notEqual(up.code, 0, 'upload refused');
    assert.equal(existsSync(join(g.dir, 'tree/upload.txt')), false);

    const remove = await rsync(
      '-r',
      '--remove-source-files',
      `${DATA_USER}@127.0.0.1:${g.id}/`,
      `${out}/rm/`,
    );
    assert.notEqual(remove.code, 0, 'a pull that removes source files is refused');
    assert.match(remove.stderr, /remove-source-files/);

    const del = await rsync('-r', '--delete', `${DATA_USER}@127.0.0.1:${g.id}/`, `${out}/del/`);
    // --delete only ever acts on the receiving side (ours); the gate may refuse it or serve a plain pull.
    if (del.code === 0) assert.ok(existsSync(join(out, 'del/manifest')));

    const other = await rsync('-r', `${DATA_USER}@127.0.0.1:${H.logs}/`, `${out}/logs-abs/`);
    const up1 = await rsync('-r', `${DATA_USER}@127.0.0.1:../logs/`, `${out}/logs-rel/`);
    for (const [what, r, dest] of [
      ['absolute path', other, 'logs-abs'],
      ['../logs', up1, 'logs-rel'],
    ] as const) {
      const got = existsSync(join(out, dest)) ? await readdir(join(out, dest)) : [];
      assert.equal(got.includes(logsGen.id), false, `logs handover read through ${what}: ${r.stderr}`);
    }
    const logsList = await ssh(dataKey.privateKey, DATA_USER, ['gate logs']);
    assertGateRefused(logsList, /not an allowed command/);

    // The source keeps every file of both generations.
    assert.equal(await sha256File(join(g.dir, 'manifest')), g.manifestSha256);
    for (const f of [
      'tree/README.txt',
      'tree/db/data.bin',
      'tree/db/empty',
      'tree/etc/app.conf',
      'meta.json',
    ]) {
      assert.ok(existsSync(join(g.dir, f)), `${f} still on the source`);
    }
    assert.equal(await sha256File(join(logsGen.dir, 'manifest')), logsGen.manifestSha256);
    await rm(g.dir, { recursive: true, force: true });
    await rm(logsGen.dir, { recursive: true, force: true });
  },
);

test(
  'ack of an unknown, incomplete or dot-named generation, or with a wrong hash, is refused and logged',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await stage();
    const partial = await stage({ complete: false });
    const dotId = nextId();
    const dotted = await writeGeneration(H.data, `.${dotId}.partial`, { source: SOURCE });
    await chownTree(dotted.dir, dataUser);
    const hash = g.manifestSha256;
    const ack = (id: string, h: string) => ssh(dataKey.privateKey, DATA_USER, [`ack ${id} ${h}`]);

    assertGateRefused(await ack(nextId(), hash), /not pending/);
    assertGateRefused(await ack(partial.id, hash), /not pending/);
    assertGateRefused(await ack(partial.id, sha256('')), /not pending/);
    assertGateRefused(
      await ack(`.${dotId}.partial`, dotted.manifestSha256),
      /expected "ack|no valid generation id/,
    );
    assertGateRefused(await ack(dotId, dotted.manifestSha256), /not pending/);
    assertGateRefused(await ack(g.id, sha256('something else')), /does not match/);
    assertGateRefused(await ack(g.id, hash.toUpperCase()), /expected "ack/);
    assertGateRefused(await ack(`../${g.id}`, hash), /no valid generation id/);

    // Nothing moved: all three are where they were; the source store has none of them.
    assert.deepEqual(
      (await readdir(H.data)).filter((n) => n !== '.gate-events' && n !== '.rejected').sort(),
      [`.${dotId}.partial`, g.id, partial.id].sort(),
    );
    assert.equal(await sha256File(join(g.dir, 'manifest')), hash);
    const stored = await ids(H.store);
    for (const id of [g.id, partial.id, dotId]) assert.equal(stored.includes(id), false);

    // Without proof of receipt even the right hash is refused (issue 10, hole 2)…
    assertGateRefused(await ack(g.id, hash), /no answer to the challenge/);
    // …and the one right ack, answered from a copy of the generation, works.
    const ok = await ackDialogue(
      ['ssh', ...sshClientArgs(sshd, dataKey.privateKey), '-o', 'ControlMaster=no', `${DATA_USER}@127.0.0.1`],
      `ack ${g.id} ${hash}`,
      { copyDir: await copyGeneration(g.dir, join(root, 'sink-copy')) },
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok((await ids(H.store)).includes(g.id));
    for (const name of await readdir(H.data)) await rm(join(H.data, name), { recursive: true, force: true });
  },
);
