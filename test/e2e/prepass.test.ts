import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { createFakeApp } from '../helpers/fake-app.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Issue #14: the live pre-pass of `collect: rsync`. A file rewritten with the same size within the
// same timestamp tick after the pre-pass copied it has the same size and mtime as its mirror copy:
// rsync's quick check would skip it while the app is down. The "racily clean" rule copies it again.
const NEEDS_ROOT = needsRootOrSkipFile('prepass', 'creates users');
const USERS = { data: 'bzNPreData', logs: 'bzNPreLogs' };
let root: string;
let s: SourceSetup;
let racy: string;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-prepass-'));
  await chmod(root, 0o755);
  await ensureUser(USERS.data);
  await ensureUser(USERS.logs);
  const app = createFakeApp(join(root, 'shop', 'app'));
  racy = join(app.dataDir, 'racy.txt');
  const ref = join(root, 'racy.ref');
  // after the pre-pass, as the app stops: the file gets other bytes of the same size and its old
  // mtime back to the nanosecond, as a rewrite within the same timestamp tick would leave it
  const stop = `${app.stopCmd}\ntouch -r ${racy} ${ref} && printf 'AFTER-PREPASS\\n' > ${racy} && touch -r ${ref} ${racy}`;
  s = await makeSourceSetup(root, { name: 'shop', dataUser: USERS.data, logsUser: USERS.logs, stop });
});

after(async () => {
  if (NEEDS_ROOT) return;
  s?.app.kill();
  await rm(root, { recursive: true, force: true });
});

test(
  'a same-size rewrite within the same timestamp tick after the pre-pass copied the file is never missed',
  { skip: NEEDS_ROOT },
  async () => {
    for (let round = 0; round < 3; round++) {
      // written now: its mtime is not clearly older than the pre-pass's start
      await writeFile(racy, 'BEFORE-PREPAS\n'); // the same size as what the stop writes
      const r = await runBaton(['source', 'backup', '--config', s.config]);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stderr, /data pre-pass done while the app runs \([1-9][0-9]* recently changed/);
      const [id] = (await generationIds(s.handoverData)).slice(-1);
      const got = await readFile(join(s.handoverData, id ?? '', 'tree', racy.slice(1)), 'utf8');
      assert.equal(got, 'AFTER-PREPASS\n', `round ${round}: the rewrite while stopping is in the generation`);
      assert.equal(await readFile(racy, 'utf8'), 'AFTER-PREPASS\n');
      await sleep(1100); // a new generation id
    }
  },
);

test('prepass: false runs no pre-pass; the generation is the same', { skip: NEEDS_ROOT }, async () => {
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
