import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Progress bars appear on a terminal and never under cron (no TTY).
const NEEDS_ROOT = needsRootOrSkipFile('progress', 'users');

let root: string;
let s: SourceSetup;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-progress-'));
  await chmod(root, 0o755);
  await ensureUser('batonPrgData');
  await ensureUser('batonPrgLogs');
  s = await makeSourceSetup(root, { name: 'prg', dataUser: 'batonPrgData', logsUser: 'batonPrgLogs' });
  await writeFile(join(s.app.dataDir, 'blob.bin'), Buffer.alloc(4 * 2 ** 20, 1));
});

after(async () => {
  if (NEEDS_ROOT) return;
  s.app.kill();
  await rm(root, { recursive: true, force: true });
});

test('under cron (no terminal) there is no progress bar', { skip: NEEDS_ROOT }, async () => {
  const r = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stderr, /collect data \[/);
  await sleep(1100);
});

test('on a terminal the collection shows a progress bar on stderr', { skip: NEEDS_ROOT }, async () => {
  await writeFile(join(s.app.dataDir, 'blob2.bin'), Buffer.alloc(4 * 2 ** 20, 2));
  // script(1) gives baton a pseudo-terminal, as an admin running it by hand would have
  const cmd = `${process.execPath} ${BATON_MAIN} source backup --config ${s.config}`;
  const r = await runProcess(['script', '-qefc', cmd, '/dev/null'], {
    timeoutMs: 120_000,
    captureStdout: true,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /collect data \[[^\]]*\] 100% /, 'a bar that reached 100 %');
  assert.equal((await generationIds(s.handoverData)).length, 2);
});

test('on a terminal verify --deep shows a hashing progress bar', { skip: NEEDS_ROOT }, async () => {
  const [id] = await generationIds(s.handoverData);
  assert.ok(id);
  const cmd = `${process.execPath} ${BATON_MAIN} verify --deep ${join(s.handoverData, id)}`;
  const r = await runProcess(['script', '-qefc', cmd, '/dev/null'], {
    timeoutMs: 120_000,
    captureStdout: true,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`verify ${id} \\[[^\\]]*\\] 100% `));
  const plain = await runBaton(['verify', '--deep', join(s.handoverData, id)]);
  assert.equal(plain.code, 0, show(plain));
  assert.doesNotMatch(plain.stderr + plain.stdout, /verify [0-9T-]+Z \[/);
});
