import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { createFakeApp } from '../helpers/fake-app.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';
import { runProcess } from '../../src/adapters/run.js';

// `source restore` keeps a safety copy of the data it replaces (copied while the app runs, then
// refreshed while it is down) and prints the rsync commands that put it back. Both must see a
// same-size change that rsync's quick check (whole-second mtimes) would take for unchanged.
const NEEDS_ROOT = needsRootOrSkipFile('restore-safety-racy', 'creates users');
const USERS = { data: 'bzZRsData', logs: 'bzZRsLogs' };
let root: string;
let s: SourceSetup;
let racy: string;
let sameSecond: string;
let writerPid: string;

const sh = async (script: string) => {
  const r = await runProcess(['/bin/sh', '-c', script], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr}`);
};

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-rsracy-'));
  await chmod(root, 0o755);
  await ensureUser(USERS.data);
  await ensureUser(USERS.logs);
  const app = createFakeApp(join(root, 'shop', 'app'));
  racy = join(app.dataDir, 'racy.txt');
  sameSecond = join(app.dataDir, 'same-second.txt');
  const ref = join(root, 'racy.ref');
  writerPid = join(root, 'writer.pid');
  // as the app stops (after the live safety copy): the writer stops, and its last write gets other
  // bytes of the same size within the same timestamp tick as the version the live copy read (its
  // mtime to the nanosecond, taken from that copy when it is still there)
  const live = `$(ls -d ${join(root, 'shop', 'state', 'restore-safety')}/*/ 2>/dev/null | tail -n 1)${racy.slice(1)}`;
  const stopTail =
    `if [ -f ${writerPid} ]; then kill $(cat ${writerPid}); rm ${writerPid}; sleep 0.3; fi; ` +
    `touch -r ${racy} ${ref} && printf 'AFTER-STOPPING\\n' > ${racy} && touch -r ${ref} ${racy}; ` +
    `l="${live}"; if [ -f "$l" ]; then touch -r "$l" ${racy}; fi`;
  s = await makeSourceSetup(root, {
    name: 'shop',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    stop: `${app.stopCmd}\n${stopTail}`,
    prepass: false,
  });
});

after(async () => {
  if (NEEDS_ROOT) return;
  s?.app.kill();
  await rm(root, { recursive: true, force: true });
});

test(
  'source restore: the safety copy holds the data as the app left it, and the printed undo puts it back exactly',
  { skip: NEEDS_ROOT },
  async () => {
    await writeFile(racy, 'AFTER-STOPPING\n');
    // in the generation: one version, at .1 s of a second long ago
    await writeFile(sameSecond, 'GEN-VERSION-A\n');
    await sh(`touch -d @1500000000.1 ${sameSecond}`);
    const b = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(b.code, 0, show(b));
    const [id] = (await generationIds(s.handoverData)).slice(-1);
    assert.ok(id);

    // after the backup: the same sizes, other bytes; one changed in the same second as its backup
    await writeFile(sameSecond, 'NOW-VERSION-B\n');
    await sh(`touch -d @1500000000.9 ${sameSecond}`);
    // the app keeps writing it (the same size) until it stops: racily clean for the live copy
    const writer = spawn(
      '/bin/sh',
      ['-c', `echo $$ > ${writerPid}; while :; do printf 'BEFORE-STOPPIN\\n' > ${racy}; sleep 0.05; done`],
      { stdio: 'ignore', detached: true },
    );
    writer.unref();
    while (!existsSync(writerPid)) await sleep(20);

    const r = await runBaton(['source', 'restore', id, '--yes', '--config', s.config]);
    if (existsSync(writerPid)) process.kill(writer.pid ?? 0);
    assert.equal(r.code, 0, show(r));
    assert.equal(await readFile(sameSecond, 'utf8'), 'GEN-VERSION-A\n', 'the generation is restored');
    const [stamp] = await readdir(join(s.state, 'restore-safety'));
    assert.ok(stamp);
    const safety = join(s.state, 'restore-safety', stamp);
    assert.equal(
      await readFile(join(safety, racy.slice(1)), 'utf8'),
      'AFTER-STOPPING\n',
      'the safety copy has what the app left when it stopped, not what the live copy saw',
    );
    assert.equal(await readFile(join(safety, sameSecond.slice(1)), 'utf8'), 'NOW-VERSION-B\n');

    // the undo, as printed
    const undo = r.stdout
      .split('\n')
      .filter((l) => /^ {2}rsync /.test(l))
      .map((l) => l.trim());
    assert.equal(undo.length, 1, r.stdout);
    for (const cmd of undo) await sh(cmd);
    assert.equal(await readFile(sameSecond, 'utf8'), 'NOW-VERSION-B\n', 'the undo puts the newer bytes back');
    assert.equal(await readFile(racy, 'utf8'), 'AFTER-STOPPING\n');
  },
);
