/**
 * Files baton writes where others can write (issue 10, hole 10): the owner of a web dir or of a
 * node_exporter textfile dir, an unprivileged user, plants symlinks to a root-only file at every name
 * baton's writers used to predict (`<file>.tmp-<pid>` over the next pids, `.<name>.tmp`, the target
 * itself). Root then runs `baton status --html` and a backup that writes its metrics there: the
 * root-only file stays untouched and the reports are regular files.
 */
import assert from 'node:assert/strict';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runProcess } from '../../src/adapters/run.js';
import { runBaton, show } from '../helpers/cli.js';
import { ensureUser, needsRootOrSkipFile, type TestUser } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('planted-symlinks', 'an unprivileged user plants links for root');
const USER = 'bzAweb';
/** How many of the next pids get a planted `<file>.tmp-<pid>` (the old temp name). */
const PIDS_AHEAD = 3000;
const VICTIM_TEXT = 'ROOT ONLY: must never change\n';

let root: string;
let user: TestUser;
let web: string;
let victim: string;
let sourceConfig: string;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-planted-'));
  await chmod(root, 0o755);
  user = await ensureUser(USER);
  web = join(root, 'web');
  await mkdir(web);
  await chown(web, user.uid, user.gid);
  // A root-only file in a root-only dir: only root following a link could write it.
  const secretDir = join(root, 'root-only');
  await mkdir(secretDir, { mode: 0o700 });
  victim = join(secretDir, 'victim');
  await writeFile(victim, VICTIM_TEXT, { mode: 0o600 });
  const appData = join(root, 'app-data');
  await mkdir(appData);
  await writeFile(join(appData, 'orders.db'), 'order 1\n');
  const handover = join(root, 'handover', 'data');
  await mkdir(handover, { recursive: true });
  sourceConfig = join(root, 'source.yaml');
  await writeFile(
    sourceConfig,
    `name: bzasrc
stateDir: ${join(root, 'state')}
app: { stop: "true", start: "true" }
streams:
  data: { paths: [${appData}], handover: ${handover}, user: root, store: ${join(root, 'source-store')}, generations: 2 }
limits: { minFreeBytes: 0 }
metrics: { textfileDir: ${web} }
`,
  );
});
after(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/**
 * As the web dir's owner (one process, so planting uses up no pids): symlinks to the victim at `file`
 * itself, at `names`, and at `<file>.tmp-<pid>` for the next pids.
 */
async function plant(file: string, names: readonly string[]): Promise<void> {
  const last = Number((await readFile('/proc/sys/kernel/ns_last_pid', 'utf8')).trim());
  const script = `
    const fs = require('node:fs');
    const [victim, file, first, count, ...names] = process.argv.slice(1);
    for (let p = Number(first); p < Number(first) + Number(count); p++) fs.symlinkSync(victim, file + '.tmp-' + p);
    for (const n of [file, ...names]) fs.symlinkSync(victim, n);
  `;
  const r = await runProcess(
    [
      'runuser',
      '-u',
      USER,
      '--',
      process.execPath,
      '-e',
      script,
      victim,
      file,
      String(last + 1),
      String(PIDS_AHEAD),
      ...names,
    ],
    { timeoutMs: 120_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await lstat(file)).isSymbolicLink(), 'planted at the target itself');
  assert.equal((await lstat(file)).uid, user.uid, 'planted by the unprivileged user');
}

async function assertVictimUntouched(): Promise<void> {
  assert.equal(await readFile(victim, 'utf8'), VICTIM_TEXT);
  const st = await lstat(victim);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, 0);
}

/** Files of ours left in the web dir besides the planted links and the reports. */
async function strayFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(web)) {
    const st = await lstat(join(web, name));
    if (!st.isSymbolicLink() && !name.endsWith('.html') && !name.endsWith('.prom')) out.push(name);
  }
  return out;
}

test(
  'status --html into a dir owned by another user, symlinks planted at every predictable name -> the root-only file is untouched',
  { skip: NEEDS_ROOT },
  async () => {
    const html = join(web, 'status.html');
    await plant(html, [join(web, '.status.html.tmp'), join(web, '.status.html.baton-install')]);
    const r = await runBaton(['status', '--html', html, '--config', sourceConfig]);
    assert.equal(r.code, 0, show(r));
    await assertVictimUntouched();
    const st = await lstat(html);
    assert.ok(st.isFile(), 'the report replaced the planted link');
    assert.equal(st.uid, 0);
    assert.match(await readFile(html, 'utf8'), /<html/i);
    assert.deepEqual(await strayFiles(), [], 'no temp file left behind');
  },
);

test(
  'metrics textfile dir owned by another user, symlinks planted -> the root-only file is untouched',
  { skip: NEEDS_ROOT },
  async () => {
    const prom = join(web, 'baton_source_backup.prom');
    await plant(prom, [join(web, '.baton_source_backup.prom.tmp')]);
    const r = await runBaton(['source', 'backup', '--config', sourceConfig]);
    assert.equal(r.code, 0, show(r));
    await assertVictimUntouched();
    assert.ok((await lstat(prom)).isFile(), 'the metrics replaced the planted link');
    assert.match(await readFile(prom, 'utf8'), /baton_last_run_success\{[^}]*\} 1/);
    assert.deepEqual(await strayFiles(), [], 'no temp file left behind');
  },
);
