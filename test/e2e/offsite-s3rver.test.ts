import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBaton, show } from '../helpers/cli.js';
import { treeListing } from '../helpers/listing.js';
import { addSinkGeneration, OffsiteFixture, offsiteRun, withoutMtimes } from '../helpers/offsite-setup.js';
import { startS3rver, type S3rverServer } from '../helpers/s3rver.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

// The whole offsite engine, unencrypted, against s3rver: a second S3 implementation (no versioning,
// no Object Lock), through the built CLI. push, list, verify --deep, restore, a second push.
const NEEDS_ROOT = needsRootOrSkipFile('offsite on s3rver', 'generations owned by root');

let s3rver: S3rverServer;
let root: string;

before(async () => {
  if (NEEDS_ROOT) return;
  s3rver = await startS3rver();
  root = await mkdtemp(join(tmpdir(), 'baton-bzS-s3rver-'));
});

after(async () => {
  if (NEEDS_ROOT) return;
  await s3rver?.stop();
  await rm(root, { recursive: true, force: true });
});

test(
  'unencrypted round trip on s3rver: push, list, verify --deep, restore byte-exact, nothing sent twice',
  { skip: NEEDS_ROOT },
  async () => {
    const fx = new OffsiteFixture(root, s3rver);
    const s = await fx.setup({ encrypted: false, packSize: '1M' });
    const app = join(s.dir, 'mirror', 'srv', 'app');
    await mkdir(join(app, 'sub'), { recursive: true });
    const big = randomBytes(5 * 1024 * 1024);
    await writeFile(join(app, 'db.bin'), big);
    for (let i = 0; i < 30; i++) await writeFile(join(app, 'sub', `f${i}`), `small ${i}\n`);
    await writeFile(join(app, 'empty'), '');
    await writeFile(join(app, '-leading'), 'dash\n');
    await link(join(app, 'sub', 'f0'), join(app, 'hard'));
    await symlink('sub/f1', join(app, 'current'));
    const g1 = await addSinkGeneration(s.store, join(s.dir, 'mirror'));

    const p = await offsiteRun(s, ['push', '--json']);
    assert.equal(p.code, 0, show(p));
    assert.match(p.stderr, /offsite.encryption is not set/);
    const l = await offsiteRun(s, ['list']);
    assert.equal(l.code, 0, show(l));
    assert.match(l.stdout, new RegExp(`shop/data/${g1.id}`));
    const v = await offsiteRun(s, ['verify', '--deep']);
    assert.equal(v.code, 0, show(v));

    const out = join(s.dir, 'restored');
    const r = await offsiteRun(s, ['restore', 'shop/data', 'latest', '--to', out]);
    assert.equal(r.code, 0, show(r));
    for (const f of ['manifest', 'SHA256SUMS', 'meta.json'])
      assert.deepEqual(await readFile(join(out, f)), await readFile(join(g1.dir, f)), f);
    assert.equal(
      withoutMtimes(await treeListing(join(out, 'tree'))),
      withoutMtimes(await treeListing(join(g1.dir, 'tree'))),
    );
    const vr = await runBaton(['verify', '--deep', out]);
    assert.equal(vr.code, 0, show(vr));

    // the next generation changes one small file: only it is sent (plus the generation's own objects)
    await writeFile(join(app, 'sub', 'f5'), 'changed\n');
    const g2 = await addSinkGeneration(s.store, join(s.dir, 'mirror'), g1);
    const p2 = await offsiteRun(s, ['push', '--json']);
    assert.equal(p2.code, 0, show(p2));
    const pushed = (JSON.parse(p2.stdout) as { result: { pushed: Array<{ id: string; bytesNew: number }> } })
      .result.pushed;
    assert.deepEqual(
      pushed.map((x) => [x.id, x.bytesNew]),
      [[g2.id, 'changed\n'.length]],
    );
    const out2 = join(s.dir, 'restored2');
    const r2 = await offsiteRun(s, ['restore', 'shop/data', g2.id, '--to', out2]);
    assert.equal(r2.code, 0, show(r2));
    assert.equal(await readFile(join(out2, 'tree', 'srv', 'app', 'sub', 'f5'), 'utf8'), 'changed\n');
    assert.deepEqual(await readFile(join(out2, 'tree', 'srv', 'app', 'db.bin')), big);
  },
);
