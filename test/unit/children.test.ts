/**
 * The children record (issue 10, hole 13): every process group a run starts is recorded in its
 * state, and a later run ends the groups a killed run left — only when they are still the same
 * groups (start time, boot id), never a live run's. Real processes, no stubs.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChildRecords,
  endLeftoverChildren,
  groupMembers,
  parseProcStat,
  withChildRecords,
  type ChildRecord,
} from '../../src/adapters/children.js';
import { runProcess } from '../../src/adapters/run.js';
import { createLogger } from '../../src/adapters/log.js';

const log = createLogger({ format: 'json', level: 'silent' });
let dir: string;
let n = 0;
const started: number[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-children-'));
});
after(async () => {
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await rm(dir, { recursive: true, force: true });
});

const file = () => join(dir, `children-${n++}.json`);
const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const stat = (pid: number) => parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))!;

function alive(pid: number): boolean {
  try {
    const st = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st !== undefined && st.state !== 'Z';
  } catch {
    return false;
  }
}

/** A process group of its own, as runProcess makes them, left running "by a killed run". */
function startGroup(script: string): number {
  const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  started.push(child.pid!);
  return child.pid!;
}

/** The pid of a process that has ended: the owner of records of a run that is over. */
async function deadPid(): Promise<number> {
  const r = spawn('true');
  await new Promise((res) => r.on('exit', res));
  return r.pid!;
}

async function recordOf(pid: number, over: Partial<ChildRecord> = {}): Promise<ChildRecord> {
  return {
    pgid: pid,
    start: stat(pid).start,
    boot: bootId(),
    host: hostname(),
    command: '/bin/sh -c test',
    since: new Date().toISOString(),
    by: await deadPid(),
    byStart: '1',
    ...over,
  };
}

async function writeRecords(f: string, children: ChildRecord[]): Promise<void> {
  await writeFile(f, JSON.stringify({ children }));
}

/** Waits until the shell has started its background children. */
async function membersOf(pgid: number, atLeast: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const count = readdirSync('/proc')
      .filter((p) => /^[0-9]+$/.test(p))
      .map((p) => {
        try {
          return parseProcStat(readFileSync(`/proc/${p}/stat`, 'utf8'));
        } catch {
          return undefined;
        }
      })
      .filter((s) => s && s.pgrp === pgid && s.state !== 'Z').length;
    if (count >= atLeast) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`group ${pgid} did not reach ${atLeast} processes`);
}

test('parseProcStat: a command name with spaces and parentheses', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[0] = 'S';
  fields[2] = '4242';
  fields[19] = '987654';
  const st = parseProcStat(`1234 (a) b (c)) ${fields.join(' ')}\n`);
  assert.deepEqual(st, { pid: 1234, state: 'S', pgrp: 4242, start: '987654' });
  assert.equal(parseProcStat('garbage'), undefined);
  assert.equal(parseProcStat(''), undefined);
});

test('groupMembers: a leader with another start time is a reused pid, not the recorded group', () => {
  const rec = { pgid: 100, start: '500' } as ChildRecord;
  const procs = [
    { pid: 100, state: 'S', pgrp: 100, start: '900' },
    { pid: 101, state: 'S', pgrp: 100, start: '901' },
  ];
  assert.deepEqual(groupMembers(rec, procs), []);
  assert.equal(groupMembers({ ...rec, start: '900' }, procs).length, 2);
  // leader gone: members started since are its group; zombies are not counted
  const orphans = [
    { pid: 101, state: 'S', pgrp: 100, start: '600' },
    { pid: 102, state: 'Z', pgrp: 100, start: '600' },
    { pid: 103, state: 'S', pgrp: 7, start: '600' },
  ];
  assert.deepEqual(
    groupMembers(rec, orphans).map((p) => p.pid),
    [101],
  );
});

test('runProcess inside withChildRecords records the group while it runs and removes it after', async () => {
  const f = file();
  let seen: { children: ChildRecord[] } | undefined;
  await withChildRecords(f, log, async () => {
    const run = runProcess(['sleep', '0.5']);
    await new Promise((r) => setTimeout(r, 100));
    seen = JSON.parse(await readFile(f, 'utf8')) as { children: ChildRecord[] };
    await run;
  });
  assert.equal(seen?.children.length, 1);
  const rec = seen.children[0]!;
  assert.equal(rec.by, process.pid);
  assert.equal(rec.host, hostname());
  assert.equal(rec.boot, bootId());
  assert.match(rec.start, /^[0-9]+$/);
  assert.match(rec.command, /^sleep 0\.5/);
  assert.equal(existsSync(f), false, 'removed once the child ended');
});

test('an untracked command (the app start) is not recorded', async () => {
  const f = file();
  await withChildRecords(f, log, async () => {
    const run = runProcess(['sleep', '0.3'], { untracked: true });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(existsSync(f), false);
    await run;
  });
});

test("a killed run's group (leader and its children) is ended: SIGTERM, then the file is gone", async () => {
  const f = file();
  const pgid = startGroup('sleep 60 & sleep 60 & wait');
  await membersOf(pgid, 3);
  await writeRecords(f, [await recordOf(pgid)]);
  const ended = await endLeftoverChildren(f, log, { graceMs: 5000 });
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.pgid, pgid);
  assert.equal(ended[0]!.processes, 3);
  assert.equal(ended[0]!.killed, false);
  assert.equal(alive(pgid), false);
  assert.equal(existsSync(f), false);
});

test('a group that ignores SIGTERM is killed after the grace', async () => {
  const f = file();
  const pgid = startGroup('trap "" TERM; while :; do sleep 0.05; done');
  await membersOf(pgid, 1);
  await writeRecords(f, [await recordOf(pgid)]);
  const ended = await endLeftoverChildren(f, log, { graceMs: 300 });
  assert.equal(ended[0]?.killed, true);
  assert.equal(alive(pgid), false);
});

test('the leader gone, its children still running: the group is still ended', async () => {
  const f = file();
  const pgid = startGroup('sleep 60 & sleep 0.3; exit 0');
  await membersOf(pgid, 3);
  const rec = await recordOf(pgid);
  // the shell exits at once; its sleep lives on in the group
  for (let i = 0; i < 200 && alive(pgid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(alive(pgid), false);
  await writeRecords(f, [rec]);
  const ended = await endLeftoverChildren(f, log);
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.processes, 1);
});

test('a reused pid (other start time), another boot or a live owner: nothing is signalled', async () => {
  const pgid = startGroup('sleep 60');
  await membersOf(pgid, 1);
  for (const over of [
    { start: String(BigInt(stat(pgid).start) + 1n) },
    { boot: '00000000-0000-0000-0000-000000000000' },
    { host: `not-${hostname()}` },
    { by: process.pid, byStart: stat(process.pid).start },
  ]) {
    const f = file();
    await writeRecords(f, [await recordOf(pgid, over)]);
    assert.deepEqual(await endLeftoverChildren(f, log), [], JSON.stringify(over));
    assert.equal(alive(pgid), true, `still running after ${JSON.stringify(over)}`);
  }
});

test('no file, or an unreadable one: nothing to end', async () => {
  assert.deepEqual(await endLeftoverChildren(join(dir, 'missing.json'), log), []);
  const f = file();
  await writeFile(f, '{"children": [{"pgid": -1}]}');
  assert.deepEqual(await endLeftoverChildren(f, log), []);
  await writeFile(f, 'not json');
  assert.deepEqual(await endLeftoverChildren(f, log), []);
});

test('a symlink planted at the old temp name (<file>.tmp-<pid>) is not followed: its target stays', async () => {
  const f = file();
  const victim = join(dir, `victim-${n++}`);
  await writeFile(victim, 'ROOT ONLY\n', { mode: 0o600 });
  await symlink(victim, `${f}.tmp-${process.pid}`);
  await withChildRecords(f, log, async () => {
    const r = await runProcess(['/bin/sh', '-c', `sleep 0.3; cat '${f}'`], {
      timeoutMs: 10_000,
      captureStdout: true,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"children":\[\{"pgid":/);
  });
  assert.equal(await readFile(victim, 'utf8'), 'ROOT ONLY\n');
  assert.equal(existsSync(f), false);
});

test('a record that cannot be written -> the error is thrown and no temp file is left', async () => {
  const sub = join(dir, `cannot-${n++}`);
  await mkdir(sub);
  const f = join(sub, 'children.json');
  await mkdir(f); // a directory where the record goes: the rename fails
  const records = new ChildRecords(f);
  assert.throws(() => records.add(process.pid, ['/bin/true']));
  assert.deepEqual(readdirSync(sub), ['children.json']);
});

test('a reader polling the record file never sees a half-written record', async () => {
  const f = file();
  const records = new ChildRecords(f);
  // a long command makes each record large, so a torn write would show
  const argv = ['/bin/sh', '-c', 'x'.repeat(390)];
  const reader = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs'); let bad = 0, seen = 0; const until = Date.now() + 1500;
       while (Date.now() < until) { let t; try { t = fs.readFileSync(process.argv[1], 'utf8'); } catch { continue; }
         seen++; try { JSON.parse(t); } catch { bad++; } }
       process.stdout.write(JSON.stringify({ bad, seen }));`,
      f,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  reader.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise((res) => reader.on('exit', res));
  const until = Date.now() + 1500;
  let pid = 100_000;
  while (Date.now() < until) {
    for (let i = 0; i < 50; i++) records.add(pid + i, argv);
    for (let i = 0; i < 49; i++) records.remove(pid + i);
    pid += 50;
    await new Promise((r) => setImmediate(r));
  }
  await exited;
  const { bad, seen } = JSON.parse(out) as { bad: number; seen: number };
  assert.ok(seen > 0, 'the reader saw the file');
  assert.equal(bad, 0, `${bad} of ${seen} reads were not a whole record`);
});
