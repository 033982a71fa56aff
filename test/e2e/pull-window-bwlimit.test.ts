/**
 * Issue 15: per-source `window:` and `bwlimit:` on the sink, through a real pull (sshd, restricted
 * user, the real gate). Outside its window a source is not pulled (exit 0, outcome `waiting`, the
 * generation stays in the handover); inside it, `bwlimit` reaches the pull's rsync as --bwlimit.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { runBaton, show } from '../helpers/cli.js';
import { pullJson, startGateE2e, type E2e, type GateFixture } from '../helpers/e2e.js';
import { generationIds as ids } from '../helpers/source-setup.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('pull-window-bwlimit', 'creates users, runs sshd');
const SOURCE = 'bzz-src';
const USER = 'bzZWinData';
const ENV = { TZ: 'UTC' };

let e: E2e;
let fx: GateFixture;
let sinkConfig: string;
let baseYaml: string;

before(async () => {
  if (NEEDS_ROOT) return;
  ({ e, fx, sinkConfig } = await startGateE2e({
    prefix: 'baton-window-',
    user: USER,
    source: SOURCE,
    baseDay: Date.UTC(2026, 0, 5),
    dirMode: 0o750,
    generations: 5,
    sink: { verify: true, timeout: '60s' },
  }));
  baseYaml = await readFile(sinkConfig, 'utf8');
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

/** the sink config with more keys for the source (after its `port:` line) */
const withSourceKeys = (keys: string) =>
  writeFile(sinkConfig, baseYaml.replace(/^( {4}port: .*)$/m, `$1\n${keys}`));

const hhmm = (d: Date) =>
  `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;

test(
  'outside its window a source is waiting, not pulled; inside it, bwlimit reaches rsync',
  { skip: NEEDS_ROOT },
  async () => {
    const g = await fx.stage({ files: { 'a.txt': 'window\n' } });
    const from = new Date(Date.now() + 2 * 3600_000);
    const to = new Date(Date.now() + 3 * 3600_000);
    await withSourceKeys(`    window: "${hhmm(from)}-${hhmm(to)}"`);
    const r = await runBaton(['sink', 'pull', 'data', '--config', sinkConfig, '--json'], {
      env: ENV,
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, show(r));
    const [o] = JSON.parse(r.stdout) as Array<{ ok: boolean; waiting?: string; pulled: string[] }>;
    assert.ok(o, show(r));
    assert.equal(o.ok, true);
    assert.match(o.waiting ?? '', /outside its pull window/);
    assert.deepEqual(o.pulled, []);
    assert.match(r.stderr, /outside its pull window/);
    assert.deepEqual(await ids(fx.H.sinkData), [], 'nothing pulled');
    assert.deepEqual(await ids(fx.H.data), [g.id], 'the generation waits in the handover');

    // a window around now, and a bandwidth limit
    const now = new Date();
    await withSourceKeys(
      `    window: "${hhmm(new Date(now.getTime() - 3600_000))}-${hhmm(new Date(now.getTime() + 3600_000))}"\n    bwlimit: 1M`,
    );
    const p = await pullJson(sinkConfig, { timeoutMs: 150_000 });
    assert.equal(p.r.code, 0, show(p.r));
    assert.deepEqual(p.o.acked, [g.id]);
    assert.match(p.r.stderr, /rsync limited to 1024 KiB\/s/);
    assert.match(p.r.stderr, /--bwlimit=1024/);
    assert.deepEqual(await ids(fx.H.sinkData), [g.id]);
  },
);
