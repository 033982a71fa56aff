import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { createFakeApp } from '../helpers/fake-app.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Issue #14: the live pre-pass of `collect: rsync` and `collect: reflink`. A file rewritten with the
// same size within the same timestamp tick after the pre-pass copied it has the same size and mtime
// as its copy: rsync's quick check would skip it while the app is down. The "racily clean" rule
// copies it again. The file's mtime is put at or after the pre-pass's start (one hour ahead), where
// the rule must catch it whatever the filesystem's granularity and however slow baton starts: a
// mtime written "just before" the run is only racy when the run starts within the tick, which a
// loaded machine does not guarantee.
const NEEDS_ROOT = needsRootOrSkipFile('prepass', 'creates users');
const USERS = { data: 'bzNPreData', logs: 'bzNPreLogs' };
const RFL_USERS = { data: 'bzVPreRflData', logs: 'bzVPreRflLogs' };
let root: string;
let rsyncSetup: { s: SourceSetup; racy: string };
let reflinkSetup: { s: SourceSetup; racy: string } | undefined;
let xfsSkip: string | undefined;
let xfsMount: string | undefined;

async function sh(cmd: string): Promise<{ code: number | null; out: string }> {
  const r = await runProcess(['/bin/sh', '-c', cmd], { timeoutMs: 120_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/** A source setup whose stop command rewrites `racy` with the same size and its old mtime, to the nanosecond. */
async function racySetup(dir: string, users: { data: string; logs: string }) {
  const app = createFakeApp(join(dir, 'shop', 'app'));
  const racy = join(app.dataDir, 'racy.txt');
  const ref = join(dir, 'racy.ref');
  // after the pre-pass, as the app stops: the file gets other bytes of the same size and its old
  // mtime back to the nanosecond, as a rewrite within the same timestamp tick would leave it
  const stop = `${app.stopCmd}\ntouch -r ${racy} ${ref} && printf 'AFTER-PREPASS\\n' > ${racy} && touch -r ${ref} ${racy}`;
  const s = await makeSourceSetup(dir, { name: 'shop', dataUser: users.data, logsUser: users.logs, stop });
  return { s, racy };
}

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-prepass-'));
  await chmod(root, 0o755);
  for (const u of [...Object.values(USERS), ...Object.values(RFL_USERS)]) await ensureUser(u);
  rsyncSetup = await racySetup(root, USERS);
  // collect: reflink needs a filesystem that clones: an XFS image (as in reflink.test.ts)
  if ((await sh('command -v mkfs.xfs')).code !== 0) await sh('apt-get install -y xfsprogs');
  const img = join(root, 'xfs.img');
  const mnt = join(root, 'xfs');
  await mkdir(mnt);
  for (const c of [
    `truncate -s 400M ${img}`,
    `mkfs.xfs -q -m reflink=1 ${img}`,
    `mount -o loop ${img} ${mnt}`,
  ]) {
    const r = await sh(c);
    if (r.code !== 0) {
      xfsSkip = `${c}: ${r.out}`;
      return;
    }
  }
  xfsMount = mnt;
  await chmod(mnt, 0o755);
  reflinkSetup = await racySetup(mnt, RFL_USERS);
  const yaml = await readFile(reflinkSetup.s.config, 'utf8');
  const next = yaml.replace(/(\n {2}data: \{[^\n]*generations: 2) \}/, '$1, collect: reflink }');
  assert.notEqual(next, yaml);
  await writeFile(reflinkSetup.s.config, next);
});

after(async () => {
  if (NEEDS_ROOT) return;
  rsyncSetup?.s.app.kill();
  reflinkSetup?.s.app.kill();
  if (xfsMount && (await sh(`umount ${xfsMount}`)).code !== 0) await sh(`umount -l ${xfsMount}`);
  await rm(root, { recursive: true, force: true });
});

async function racyRounds({ s, racy }: { s: SourceSetup; racy: string }, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await writeFile(racy, 'BEFORE-PREPAS\n'); // the same size as what the stop writes
    const ahead = Date.now() / 1000 + 3600;
    await utimes(racy, ahead, ahead);
    const r = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /data pre-pass done while the app runs \([1-9][0-9]* recently changed/);
    const [id] = (await generationIds(s.handoverData)).slice(-1);
    const got = await readFile(join(s.handoverData, id ?? '', 'tree', racy.slice(1)), 'utf8');
    assert.equal(got, 'AFTER-PREPASS\n', `round ${round}: the rewrite while stopping is in the generation`);
    assert.equal(await readFile(racy, 'utf8'), 'AFTER-PREPASS\n');
    await sleep(1100); // a new generation id
  }
}

test(
  'a same-size rewrite within the same timestamp tick after the pre-pass copied the file is never missed',
  { skip: NEEDS_ROOT },
  async () => {
    await racyRounds(rsyncSetup, 3);
  },
);

test(
  'collect: reflink with the pre-pass: the same rewrite is never missed either',
  { skip: NEEDS_ROOT },
  async (t) => {
    if (!reflinkSetup) {
      t.skip(xfsSkip ?? 'no XFS');
      return;
    }
    await racyRounds(reflinkSetup, 2);
    // a clone was taken while the app ran, refreshed while it was down, and none is left behind
    const r = await runBaton(['source', 'backup', '--config', reflinkSetup.s.config]);
    assert.equal(r.code, 0, show(r));
    assert.match(
      r.stderr,
      // while it is down: the change journal's copy into the clone, or the full refresh of the clone
      /cloning the data paths \(reflink\)[^]*data pre-pass done[^]*stopping the app[^]*(refreshing the data clone|collect: data: .*via=journal)/,
    );
    assert.deepEqual(
      (await sh(`ls -A ${join(reflinkSetup.s.state, 'reflink')} 2>/dev/null`)).out,
      '',
      'no clone left behind',
    );
  },
);

test('prepass: false runs no pre-pass; the generation is the same', { skip: NEEDS_ROOT }, async () => {
  const { s, racy } = rsyncSetup;
  const yaml = await readFile(s.config, 'utf8');
  await writeFile(s.config, yaml.replace(/generations: 2 \}/, 'generations: 2, prepass: false }'));
  await writeFile(racy, 'BEFORE-PREPAS\n');
  const r = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stderr, /data pre-pass/);
  const [id] = (await generationIds(s.handoverData)).slice(-1);
  assert.equal(
    await readFile(join(s.handoverData, id ?? '', 'tree', racy.slice(1)), 'utf8'),
    'AFTER-PREPASS\n',
  );
});
