import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { startE2e, type E2e } from '../helpers/e2e.js';
import { alive, pgrpOf } from '../helpers/procs.js';
import { needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Issue 10 hole 13 (source side): baton's children run in process groups of their own, so killing
// baton's group (SIGKILL, as an operator or a cron wrapper does) leaves them running. The run
// records them; the next backup (or `source recover`) ends them before it touches the mirror.
const NEEDS_ROOT = needsRootOrSkipFile('killed-run-source', 'creates users');

const USERS = { data: 'bzEKrsData', logs: 'bzEKrsLogs' };
let e: E2e;
let root: string;
const setups: SourceSetup[] = [];

before(async () => {
  if (NEEDS_ROOT) return;
  e = await startE2e({ prefix: 'baton-killed-src-', users: USERS });
  root = e.root;
});

after(async () => {
  if (NEEDS_ROOT) return;
  for (const s of setups) s.app.kill();
  await e?.stop();
});

/**
 * An `rsync` first on PATH. The first data mirror refresh becomes a writer that never ends (it
 * appends to a file in the mirror every 50 ms, as a long rsync would keep writing) after writing
 * its pid; later refreshes note whether that writer is still alive when they start, then run the
 * real rsync. Anything else runs the real rsync.
 */
async function writerRsync(s: SourceSetup) {
  const bin = join(s.dir, 'bin');
  await mkdir(bin, { recursive: true });
  const mirror = join(s.state, 'mirror', 'data');
  const files = {
    marker: join(s.dir, 'writer-started'),
    pid: join(s.dir, 'writer.pid'),
    verdict: join(s.dir, 'verdict'),
  };
  await writeFile(
    join(bin, 'rsync'),
    `#!/bin/sh
case "$*" in *"${mirror}/"*)
  if [ ! -e '${files.marker}' ]; then
    : > '${files.marker}'
    mkdir -p '${mirror}'
    echo $$ > '${files.pid}'
    while :; do date >> '${mirror}/.written-by-the-killed-run'; sleep 0.05; done
  fi
  st=$(cut -d')' -f2 /proc/$(cat '${files.pid}')/stat 2>/dev/null | cut -d' ' -f2)
  if [ -n "$st" ] && [ "$st" != Z ]; then echo alive >> '${files.verdict}'; else echo gone >> '${files.verdict}'; fi
;; esac
exec /usr/bin/rsync "$@"
`,
    { mode: 0o755 },
  );
  return { env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` }, files };
}

/** Starts `baton source backup`, waits for the writer, then SIGKILLs baton's whole process group. */
async function killMidCollect(s: SourceSetup, env: NodeJS.ProcessEnv, pidFile: string): Promise<number> {
  let batonPid = 0;
  const run: Promise<RunResult> = runProcess(
    [process.execPath, BATON_MAIN, 'source', 'backup', '--config', s.config],
    { env: { ...process.env, ...env }, timeoutMs: 120_000, onSpawn: (pid) => (batonPid = pid) },
  );
  for (let i = 0; i < 600 && !existsSync(pidFile); i++) await sleep(100);
  assert.ok(existsSync(pidFile), 'the collection started');
  const writer = Number((await readFile(pidFile, 'utf8')).trim());
  // the run recorded the writer's process group before it was killed
  const recorded = JSON.parse(await readFile(join(s.state, 'children.json'), 'utf8')) as {
    children: Array<{ pgid: number; start: string }>;
  };
  assert.ok(
    recorded.children.some((c) => c.pgid === pgrpOf(writer)),
    `the writer's group is recorded: ${JSON.stringify(recorded)}`,
  );
  process.kill(-batonPid, 'SIGKILL');
  const r = await run;
  assert.equal(r.signal, 'SIGKILL', show(r));
  await sleep(300);
  assert.ok(alive(writer), 'a writer of the killed run is still running after the kill');
  return writer;
}

test(
  'hole 13: baton killed mid-collect -> the next backup ends the writer it left before it touches the mirror, and completes',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await makeSourceSetup(root, {
      name: 'killed-backup',
      dataUser: USERS.data,
      logsUser: USERS.logs,
      // killed while the app is down: no live pre-pass, whose rsync would be the one killed
      prepass: false,
    });
    setups.push(s);
    const { env, files } = await writerRsync(s);
    const writer = await killMidCollect(s, env, files.pid);
    assert.equal(s.app.isRunning(), false, 'the killed run had stopped the app');

    const r = await runBaton(['source', 'backup', '--config', s.config], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /ending processes a killed run left running: .*rsync/);
    assert.deepEqual(
      (await readFile(files.verdict, 'utf8')).trim().split('\n'),
      ['gone'],
      'no writer of the killed run was alive when the next run refreshed the mirror',
    );
    assert.equal(alive(writer), false);
    assert.equal(existsSync(join(s.state, 'children.json')), false, 'no record left after a clean run');
    assert.ok(s.app.isRunning());
    assert.equal((await generationIds(s.handoverData)).length, 1);
  },
);

test(
  'hole 13: baton killed mid-collect -> `source recover` ends the writer, then starts the app',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await makeSourceSetup(root, {
      name: 'killed-recover',
      dataUser: USERS.data,
      logsUser: USERS.logs,
      prepass: false,
    });
    setups.push(s);
    const { env, files } = await writerRsync(s);
    const writer = await killMidCollect(s, env, files.pid);

    const r = await runBaton(['source', 'recover', '--config', s.config], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /ending processes a killed run left running/);
    assert.equal(alive(writer), false, 'the writer of the killed run was ended');
    assert.equal(existsSync(join(s.state, 'children.json')), false);
    assert.ok(s.app.isRunning(), 'recover started the app');
  },
);
