import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { needsRootOrSkipFile } from '../helpers/users.js';
import { runBaton, show } from '../helpers/cli.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { addSinkGeneration } from '../helpers/offsite-setup.js';

// Issue 15: calendar retention on the sink store through the real CLI (`sink prune --dry-run`
// shows which rule keeps each generation; `sink prune` removes the rest), and `baton restore
// SOURCE/STREAM ID|latest --to DIR --config --json` finding a generation by name.
const NEEDS_ROOT = needsRootOrSkipFile('sink-prune-calendar', 'builds generations owned by root');
const ENV = { TZ: 'UTC' };
let root: string;
let store: string;
let config: string;
let mirror: string;

// oldest first; "now" is the real clock (2026-12 or later), all of these lie in the past
const IDS = [
  '2026-07-15T060000Z',
  '2026-08-10T060000Z',
  '2026-09-05T060000Z',
  '2026-10-01T060000Z',
  '2026-11-20T060000Z',
  '2026-11-21T060000Z',
  '2026-11-22T050000Z',
  '2026-11-22T060000Z',
];

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-gfs-'));
  store = await makeSinkStore(join(root, 'store'));
  mirror = join(root, 'mirror');
  await mkdir(join(mirror, 'srv', 'app'), { recursive: true });
  let previous: { id: string; dir: string } | undefined;
  for (const id of IDS) {
    await writeFile(join(mirror, 'srv', 'app', 'which.txt'), `${id}\n`);
    previous = await addSinkGeneration(store, mirror, previous, id);
  }
  const identity = join(root, 'id_ed25519');
  const knownHosts = join(root, 'known_hosts');
  await writeFile(identity, '', { mode: 0o600 });
  await writeFile(knownHosts, '');
  config = join(root, 'sink.yaml');
  await writeFile(
    config,
    `store: ${store}
stateDir: ${join(root, 'state')}
sources:
  - name: shop
    host: 127.0.0.1
    knownHosts: ${knownHosts}
    streams:
      data: { user: dataBackupSource, identity: ${identity}, generations: 1, keepDaily: 2, keepMonthly: 3 }
`,
  );
});

after(async () => {
  if (NEEDS_ROOT) return;
  await rm(root, { recursive: true, force: true });
});

const inStore = async () =>
  (await readdir(join(store, 'shop', 'data'))).filter((n) => !n.startsWith('.')).sort();

test(
  'sink prune --dry-run names the rules that keep each generation and removes nothing',
  { skip: NEEDS_ROOT },
  async () => {
    const r = await runBaton(['sink', 'prune', '--dry-run', '--json', '--config', config], { env: ENV });
    assert.equal(r.code, 0, show(r));
    const [plan] = JSON.parse(r.stdout) as Array<{
      source: string;
      stream: string;
      dryRun: boolean;
      keep: Array<{ id: string; rules: string[] }>;
      remove: Array<{ id: string }>;
    }>;
    assert.ok(plan);
    assert.equal(plan.dryRun, true);
    const rules = new Map(plan.keep.map((k) => [k.id, k.rules]));
    // the newest of the last 2 days with one, and of the last 3 months with one; the newest overall
    assert.deepEqual([...rules.keys()].sort(), [
      '2026-09-05T060000Z',
      '2026-10-01T060000Z',
      '2026-11-21T060000Z',
      '2026-11-22T060000Z',
    ]);
    assert.ok(rules.get('2026-11-22T060000Z')?.some((x) => x.startsWith('daily')));
    assert.ok(rules.get('2026-11-22T060000Z')?.some((x) => x.startsWith('monthly')));
    assert.ok(rules.get('2026-11-21T060000Z')?.some((x) => x.startsWith('daily')));
    assert.ok(rules.get('2026-09-05T060000Z')?.some((x) => x.startsWith('monthly')));
    assert.deepEqual(plan.remove.map((d) => d.id).sort(), [
      '2026-07-15T060000Z',
      '2026-08-10T060000Z',
      '2026-11-20T060000Z',
      '2026-11-22T050000Z',
    ]);
    assert.deepEqual(await inStore(), IDS, 'a dry run removes nothing');

    const text = await runBaton(['sink', 'prune', '--dry-run', '--config', config], { env: ENV });
    assert.equal(text.code, 0, show(text));
    assert.match(text.stdout, /^ {2}keep {2}2026-09-05T060000Z {2}.*monthly/m);
    assert.match(text.stdout, /^ {2}drop {2}2026-07-15T060000Z/m);
  },
);

test(
  'sink prune removes what no rule keeps; restore finds generations by name',
  { skip: NEEDS_ROOT },
  async () => {
    const r = await runBaton(['sink', 'prune', '--config', config], { env: ENV });
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await inStore(), [
      '2026-09-05T060000Z',
      '2026-10-01T060000Z',
      '2026-11-21T060000Z',
      '2026-11-22T060000Z',
    ]);

    const out = join(root, 'out-latest');
    const latest = await runBaton([
      'restore',
      'shop/data',
      'latest',
      '--to',
      out,
      '--config',
      config,
      '--json',
    ]);
    assert.equal(latest.code, 0, show(latest));
    const res = JSON.parse(latest.stdout) as { id?: string; files?: number; target?: string };
    assert.equal(res.id, '2026-11-22T060000Z');
    assert.equal(typeof res.files, 'number');
    assert.equal(await readFile(join(out, 'srv', 'app', 'which.txt'), 'utf8'), '2026-11-22T060000Z\n');

    const out2 = join(root, 'out-named');
    const named = await runBaton([
      'restore',
      'shop/data',
      '2026-09-05T060000Z',
      '--to',
      out2,
      '--config',
      config,
    ]);
    assert.equal(named.code, 0, show(named));
    assert.equal(await readFile(join(out2, 'srv', 'app', 'which.txt'), 'utf8'), '2026-09-05T060000Z\n');

    const gone = await runBaton([
      'restore',
      'shop/data',
      '2026-07-15T060000Z',
      '--to',
      join(root, 'x'),
      '--config',
      config,
    ]);
    assert.notEqual(gone.code, 0, show(gone));
    assert.match(gone.stderr, /^baton: .*2026-07-15T060000Z/m);
  },
);
