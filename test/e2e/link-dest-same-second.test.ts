/**
 * A file changed with the same size within the same second as the sink's base copy: rsync's
 * --link-dest matched it by size and whole-second mtime and hard-linked the base's OLD content over
 * the freshly pulled one. Verify caught it (hash), the generation was quarantined, and every later
 * pull repeated it against the same base: the stream was stuck. The pull now compares mtimes to the
 * nanosecond (`--modify-window=-1`, rsync >= 3.1.3). Real sshd, restricted user, the real gate.
 */
import assert from 'node:assert/strict';
import { lstat, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { show } from '../helpers/cli.js';
import { pullJson, startGateE2e, type E2e, type GateFixture } from '../helpers/e2e.js';
import { generationIds as ids } from '../helpers/source-setup.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('link-dest-same-second', 'creates users, runs sshd');
const SOURCE = 'bzq-src';
const USER = 'bzQData';

let e: E2e;
let fx: GateFixture;
let sinkConfig: string;

before(async () => {
  if (NEEDS_ROOT) return;
  ({ e, fx, sinkConfig } = await startGateE2e({
    prefix: 'baton-linkdest-',
    user: USER,
    source: SOURCE,
    baseDay: Date.UTC(2026, 0, 3),
    dirMode: 0o750,
    sink: { verify: true, timeout: '60s' },
  }));
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
});

/** the same second, other nanoseconds: what a whole-second quick check cannot tell apart */
const SECOND = 1_767_400_000;
const setMtime = (fraction: number) => async (work: string) => {
  await utimes(join(work, 'tree', 'state.bin'), SECOND + fraction, SECOND + fraction);
};

test(
  'a file rewritten with the same size in the same second as the base copy -> the new content is pulled, not linked from the base',
  { skip: NEEDS_ROOT },
  async () => {
    const first = await fx.stage({ files: { 'state.bin': 'version-1\n' }, tamper: setMtime(0.1) });
    const one = await pullJson(sinkConfig, { timeoutMs: 150_000 });
    assert.equal(one.r.code, 0, show(one.r));
    assert.deepEqual(one.o.acked, [first.id]);

    const second = await fx.stage({ files: { 'state.bin': 'version-2\n' }, tamper: setMtime(0.9) });
    const two = await pullJson(sinkConfig, { timeoutMs: 150_000 });
    assert.equal(two.r.code, 0, show(two.r));
    assert.deepEqual(two.o.acked, [second.id], show(two.r));
    assert.deepEqual(two.o.quarantined, []);
    const stored = (id: string) => join(fx.H.sinkData, id, 'tree', 'state.bin');
    assert.equal(await readFile(stored(second.id), 'utf8'), 'version-2\n');
    assert.equal(await readFile(stored(first.id), 'utf8'), 'version-1\n');
    assert.notEqual((await lstat(stored(second.id))).ino, (await lstat(stored(first.id))).ino);
    assert.deepEqual(await ids(fx.H.sinkData), [first.id, second.id]);
  },
);
