import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { show } from '../helpers/cli.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';
import { needsRootOrSkipFile } from '../helpers/users.js';
import { addSinkGeneration, bucketKeys, OffsiteFixture, offsiteRun } from '../helpers/offsite-setup.js';

// Issue 15: calendar retention of the offsite copy through the real CLI against moto_server:
// `offsite prune --dry-run` names the rule that keeps each generation and deletes nothing; `offsite
// prune` removes exactly the others (commits first), and what is left still verifies.
const NEEDS_ROOT = needsRootOrSkipFile('offsite-prune-calendar', 'builds generations owned by root');
const ENV = { TZ: 'UTC' };
const IDS = [
  '2026-07-15T060000Z',
  '2026-08-10T060000Z',
  '2026-09-05T060000Z',
  '2026-10-01T060000Z',
  '2026-11-20T060000Z',
  '2026-11-22T060000Z',
];

let moto: MotoServer;
let root: string;

before(async () => {
  if (NEEDS_ROOT) return;
  moto = await startMoto();
  root = await mkdtemp(join(tmpdir(), 'baton-offsite-gfs-'));
});

after(async () => {
  if (NEEDS_ROOT) return;
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const pruneReply = z.object({
  removed: z.array(z.string()),
  retained: z.array(z.string()),
  keep: z.array(z.object({ source: z.string(), stream: z.string(), id: z.string(), reason: z.string() })),
});

test(
  'offsite keepMonthly: the newest of each of the last 3 months and the newest generation stay; prune removes the rest',
  { skip: NEEDS_ROOT },
  async () => {
    const fx = new OffsiteFixture(root, moto);
    const s = await fx.setup({ encrypted: false, generations: 1, extra: '  keepMonthly: 3\n' });
    const mirror = join(s.dir, 'mirror');
    await mkdir(join(mirror, 'srv', 'app'), { recursive: true });
    let previous: { id: string; dir: string } | undefined;
    for (const id of IDS) {
      await writeFile(join(mirror, 'srv', 'app', 'which.txt'), `${id}\n`);
      previous = await addSinkGeneration(s.store, mirror, previous, id);
    }
    const push = await offsiteRun(s, ['push'], ENV);
    assert.equal(push.code, 0, show(push));
    const commits = async () =>
      (await bucketKeys(moto.client(), moto.bucket, s.prefix))
        .filter((k) => k.includes('/commits/'))
        .map((k) => k.slice(k.lastIndexOf('/') + 1))
        .sort();
    assert.deepEqual(await commits(), IDS);

    const v0 = await offsiteRun(s, ['verify'], ENV);
    assert.equal(v0.code, 0, show(v0));
    const dry = await offsiteRun(s, ['prune', '--dry-run', '--json'], ENV);
    assert.equal(dry.code, 0, show(dry));
    const plan = pruneReply.parse(JSON.parse(dry.stdout));
    const kept = new Map(plan.keep.map((k) => [k.id, k.reason]));
    assert.deepEqual([...kept.keys()].sort(), [
      '2026-09-05T060000Z',
      '2026-10-01T060000Z',
      '2026-11-22T060000Z',
    ]);
    assert.match(kept.get('2026-10-01T060000Z') ?? '', /monthly/, dry.stdout);
    assert.match(kept.get('2026-09-05T060000Z') ?? '', /monthly/, dry.stdout);
    assert.deepEqual(await commits(), IDS, '--dry-run deletes nothing');

    const pr = await offsiteRun(s, ['prune', '--json'], ENV);
    assert.equal(pr.code, 0, show(pr));
    const res = pruneReply.parse(JSON.parse(pr.stdout));
    assert.deepEqual(res.retained, []);
    assert.deepEqual(
      [...res.removed].sort(),
      ['2026-07-15T060000Z', '2026-08-10T060000Z', '2026-11-20T060000Z'].map((id) => `shop/data/${id}`),
    );
    assert.deepEqual(await commits(), ['2026-09-05T060000Z', '2026-10-01T060000Z', '2026-11-22T060000Z']);
    const v = await offsiteRun(s, ['verify'], ENV);
    assert.equal(v.code, 0, show(v));
  },
);
