import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { runProcess } from '../../src/adapters/run.js';
import { spawn } from 'node:child_process';
import { BATON_MAIN, show } from '../helpers/cli.js';
import { startFaultProxy } from '../helpers/s3-fault-proxy.js';
import { treeListing } from '../helpers/listing.js';
import { freePort, startMoto, type MotoServer } from '../helpers/moto.js';
import {
  addSinkGeneration,
  ageIdentity,
  bucketKeys,
  OffsiteFixture,
  offsiteRun,
  userLines,
  type OffsiteSetup,
} from '../helpers/offsite-setup.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

// The offsite engine under faults, through the built CLI against moto_server: SIGKILL at each crash
// point of a push, a missing object, Object Lock against prune, a bucket that cannot be reached.
const NEEDS_ROOT = needsRootOrSkipFile('offsite faults', 'generations owned by root');

let moto: MotoServer;
let smtp: SmtpSink;
let root: string;
let identity: string;
let fx: OffsiteFixture;

before(async () => {
  if (NEEDS_ROOT) return;
  moto = await startMoto();
  smtp = await startSmtp();
  root = await mkdtemp(join(tmpdir(), 'baton-bzS-offsite-'));
  identity = join(root, 'identity.txt');
  fx = new OffsiteFixture(root, moto, await ageIdentity(identity));
});

after(async () => {
  if (NEEDS_ROOT) return;
  await moto?.stop();
  await smtp?.stop();
  await rm(root, { recursive: true, force: true });
});

/** A mirror of small files and one large file: several packs at packSize 1M. */
async function writeMirror(dir: string, seed: string): Promise<void> {
  const app = join(dir, 'srv', 'app');
  await mkdir(join(app, 'small'), { recursive: true });
  for (let i = 0; i < 40; i++) await writeFile(join(app, 'small', `f${i}`), `${seed} ${i}\n`);
  await writeFile(join(app, 'big.bin'), randomBytes(3 * 1024 * 1024));
}

interface Version {
  key: string;
  size: number;
}
async function versions(prefix: string): Promise<Version[]> {
  const out: Version[] = [];
  let km: string | undefined;
  let vm: string | undefined;
  do {
    const r = await moto.client().send(
      new ListObjectVersionsCommand({
        Bucket: moto.bucket,
        Prefix: `${prefix}/`,
        KeyMarker: km,
        VersionIdMarker: vm,
      }),
    );
    for (const v of r.Versions ?? []) if (v.Key) out.push({ key: v.Key, size: v.Size ?? 0 });
    km = r.IsTruncated ? r.NextKeyMarker : undefined;
    vm = r.IsTruncated ? r.NextVersionIdMarker : undefined;
  } while (km !== undefined);
  return out;
}

interface PushJson {
  result?: { pushed: Array<{ id: string; bytesUploaded: number; blobsNew: number; bytesNew: number }> };
}

/** Restores every committed generation and checks it against the sink's: manifest, sums, verify --deep. */
async function restoreAll(s: OffsiteSetup, gens: ReadonlyArray<{ id: string; dir: string }>) {
  const committed = (await bucketKeys(moto.client(), moto.bucket, s.prefix))
    .filter((k) => k.startsWith(`${s.prefix}/commits/`))
    .map((k) => k.split('/').pop() ?? '');
  for (const id of committed) {
    const gen = gens.find((g) => g.id === id);
    assert.ok(gen, `a commit of a generation the sink does not have: ${id}`);
    const out = join(s.dir, `restored-${id}-${Math.random().toString(36).slice(2)}`);
    const r = await offsiteRun(s, ['restore', 'shop/data', id, '--to', out, '--identity', identity]);
    assert.equal(r.code, 0, show(r));
    for (const f of ['manifest', 'SHA256SUMS', 'meta.json'])
      assert.deepEqual(await readFile(join(out, f)), await readFile(join(gen.dir, f)), `${id} ${f}`);
    const v = await runProcess([process.execPath, 'dist/cli/main.js', 'verify', '--deep', out], {
      captureStdout: true,
    });
    assert.equal(v.code, 0, v.stderr);
  }
  return committed;
}

for (const point of [
  'offsite-pack-stored',
  'offsite-pack-indexed',
  'offsite-packs-stored',
  'offsite-before-commit',
]) {
  test(
    `SIGKILL at ${point}: no commit without its objects; the rerun uploads only what is missing; every commit restores`,
    { skip: NEEDS_ROOT },
    async () => {
      const s = await fx.setup({ packSize: '1M' });
      const mirror = join(s.dir, 'mirror');
      await writeMirror(mirror, 'one');
      const g1 = await addSinkGeneration(s.store, mirror);
      await writeMirror(mirror, 'two');
      const g2 = await addSinkGeneration(s.store, mirror, g1);

      const killed = await offsiteRun(s, ['push', '--json'], { BATON_CRASH_AT: point });
      assert.equal(killed.signal, 'SIGKILL', show(killed));
      // what a killed push left: every commit has all its objects (verify checks commits ↔ objects)
      const v = await offsiteRun(s, ['verify']);
      assert.equal(v.code, 0, show(v));
      const before = await versions(s.prefix);
      const beforeKeys = new Set(before.map((x) => x.key));
      const commitsBefore = before.filter((x) => x.key.includes('/commits/')).length;

      const again = await offsiteRun(s, ['push', '--json']);
      assert.equal(again.code, 0, show(again));
      const pushed = (JSON.parse(again.stdout) as PushJson).result?.pushed ?? [];
      assert.equal(pushed.length, 2 - commitsBefore, again.stdout);
      const after = await versions(s.prefix);
      // every byte the rerun sent is a new object version, and no pack or index was sent twice
      const fresh = after.slice();
      for (const b of before)
        fresh.splice(
          fresh.findIndex((a) => a.key === b.key && a.size === b.size),
          1,
        );
      assert.equal(
        pushed.reduce((n, p) => n + p.bytesUploaded, 0),
        fresh.reduce((n, x) => n + x.size, 0),
      );
      for (const key of new Set(after.map((x) => x.key)))
        if (/\/(packs|index)\//.test(key))
          assert.equal(after.filter((x) => x.key === key).length, 1, `${key} uploaded twice`);
      // the killed generation's blobs in packs indexed before the kill are not sent again
      const first = pushed[0];
      assert.ok(first, again.stdout);
      if (point === 'offsite-packs-stored' || point === 'offsite-before-commit')
        assert.deepEqual([first.id, first.blobsNew, first.bytesNew], [g1.id, 0, 0]);
      if (point === 'offsite-pack-indexed')
        assert.ok(first.bytesNew > 0 && first.bytesNew < 3 * 1024 * 1024, `sent again: ${first.bytesNew}`);
      assert.ok(beforeKeys.size > 0);
      const committed = await restoreAll(s, [g1, g2]);
      assert.deepEqual(committed.sort(), [g1.id, g2.id].sort());
    },
  );
}

test(
  'a missing pack: offsite verify (not only --deep) and offsite restore name it and exit 1',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await fx.setup();
    const mirror = join(s.dir, 'mirror');
    await writeMirror(mirror, 'missing');
    await addSinkGeneration(s.store, mirror);
    const p = await offsiteRun(s, ['push']);
    assert.equal(p.code, 0, show(p));
    const packKey = (await bucketKeys(moto.client(), moto.bucket, s.prefix)).find((k) =>
      k.startsWith(`${s.prefix}/packs/`),
    );
    assert.ok(packKey);
    const rel = packKey.slice(s.prefix.length + 1);
    await moto.client().send(new DeleteObjectCommand({ Bucket: moto.bucket, Key: packKey }));

    for (const args of [['verify'], ['verify', '--deep', '--identity', identity]]) {
      const v = await offsiteRun(s, args);
      assert.equal(v.code, 1, show(v));
      assert.ok(v.stdout.includes(`${rel}: missing from the bucket`), show(v));
      assert.equal(userLines(v.stderr).length, 1, show(v));
    }
    const r = await offsiteRun(s, [
      'restore',
      'shop/data',
      'latest',
      '--to',
      join(s.dir, 'out'),
      '--identity',
      identity,
    ]);
    assert.equal(r.code, 1, show(r));
    assert.equal(userLines(r.stderr).length, 1, show(r));
    assert.ok(r.stderr.includes(rel), show(r));
  },
);

test(
  'offsite verify --deep without --identity on an encrypted repository: exit 2, one line',
  {
    skip: NEEDS_ROOT,
  },
  async () => {
    const s = await fx.setup();
    const v = await offsiteRun(s, ['verify', '--deep']);
    assert.equal(v.code, 2, show(v));
    assert.equal(userLines(v.stderr).length, 1, show(v));
    assert.match(v.stderr, /--deep on an encrypted repository needs --identity FILE/);
  },
);

test(
  'Object Lock: prune cannot remove a locked object and says so once (logged as retained); after expiry it can',
  { skip: NEEDS_ROOT },
  async () => {
    const s = await fx.setup({ objectLock: '20s', generations: 1, top: mailTop() });
    const mirror = join(s.dir, 'mirror');
    await writeMirror(mirror, 'locked one');
    const g1 = await addSinkGeneration(s.store, mirror);
    await writeMirror(mirror, 'locked two');
    await addSinkGeneration(s.store, mirror, g1);
    const p = await offsiteRun(s, ['push']);
    assert.equal(p.code, 0, show(p));
    const mailsBefore = smtp.messages.length;

    const pr = await offsiteRun(s, ['prune']);
    assert.equal(pr.code, 0, show(pr));
    assert.match(pr.stdout, /still under Object Lock retention were kept/);
    assert.equal(pr.stdout.match(/Object Lock/g)?.length, 1, show(pr));
    assert.match(pr.stderr, /retained/);
    assert.equal(smtp.messages.length, mailsBefore, 'no alert for a retained object');
    const commits = async () =>
      (await bucketKeys(moto.client(), moto.bucket, s.prefix)).filter((k) => k.includes('/commits/'));
    assert.ok(
      (await commits()).some((k) => k.endsWith(g1.id)),
      'the locked commit is still there',
    );

    await new Promise((r) => setTimeout(r, 21_000));
    const pr2 = await offsiteRun(s, ['prune', '--json']);
    assert.equal(pr2.code, 0, show(pr2));
    const res = JSON.parse(pr2.stdout) as { removed: string[]; retained: string[]; packsDeleted: number };
    assert.deepEqual(res.retained, []);
    assert.deepEqual(res.removed, [`shop/data/${g1.id}`]);
    assert.ok(res.packsDeleted > 0, pr2.stdout);
    assert.ok(!(await commits()).some((k) => k.endsWith(g1.id)));
    const v = await offsiteRun(s, ['verify']);
    assert.equal(v.code, 0, show(v));
  },
);

function mailTop(): string {
  return `alerts:\n  mail: { to: [ops@example.com], from: baton@sink, smtp: '${smtp.url}' }\n`;
}

test(
  'endpoint down, wrong credentials, missing bucket: one line, exit 1, one alert mail each, the sink store untouched',
  { skip: NEEDS_ROOT },
  async () => {
    const refusing = await startMoto({ rejectCredentials: true });
    try {
      const down = `http://127.0.0.1:${await freePort()}`;
      const cases: Array<{
        name: string;
        opts: Parameters<OffsiteFixture['setup']>[0];
        env?: NodeJS.ProcessEnv;
      }> = [
        { name: 'endpoint down', opts: { endpoint: down } },
        {
          name: 'wrong credentials',
          opts: { endpoint: refusing.endpoint, bucket: refusing.bucket },
          env: refusing.env,
        },
        { name: 'missing bucket', opts: { bucket: 'no-such-bucket-bzs' } },
      ];
      for (const c of cases) {
        const s = await fx.setup({ ...c.opts, top: mailTop(), extra: '' });
        const mirror = join(s.dir, 'mirror');
        await writeMirror(mirror, c.name);
        await addSinkGeneration(s.store, mirror);
        const listing = await treeListing(s.store);
        const mails = smtp.messages.length;
        const r = await offsiteRun(s, ['push'], c.env ?? {});
        assert.equal(r.code, 1, `${c.name}: ${show(r)}`);
        assert.equal(userLines(r.stderr).length, 1, `${c.name}: ${show(r)}`);
        assert.ok(!r.stderr.includes(moto.credentials.secretAccessKey), show(r));
        const got = await smtp.waitFor(mails + 1);
        assert.equal(got.length, mails + 1, c.name);
        assert.match(got.at(-1)?.subject ?? '', /offsite push FAILED/, c.name);
        assert.equal(await treeListing(s.store), listing, `${c.name}: the sink store changed`);
      }
    } finally {
      await refusing.stop();
    }
  },
);

test(
  'SIGKILL in the middle of a pack upload (the PUT sent, its reply held by a loopback proxy): the rerun commits, every commit restores',
  { skip: NEEDS_ROOT },
  async () => {
    const proxy = await startFaultProxy(moto.endpoint);
    try {
      const s = await fx.setup({ packSize: '1M', endpoint: proxy.endpoint });
      const mirror = join(s.dir, 'mirror');
      await writeMirror(mirror, 'mid-upload');
      const g1 = await addSinkGeneration(s.store, mirror);
      proxy.inject('slow', 1, { method: 'PUT', url: '/packs/', delayMs: 120_000 });
      const child = spawn(process.execPath, [BATON_MAIN, 'offsite', 'push', '--config', s.config], {
        env: { ...process.env, ...s.env },
        stdio: 'ignore',
      });
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
      const deadline = Date.now() + 60_000;
      while (!proxy.seen.some((q) => q.fault === 'slow') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.ok(
        proxy.seen.some((q) => q.fault === 'slow'),
        'the push never sent a pack',
      );
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL');
      const keys = await bucketKeys(moto.client(), moto.bucket, s.prefix);
      assert.ok(!keys.some((k) => k.includes('/commits/')), keys.join('\n'));

      const again = await offsiteRun(s, ['push']);
      assert.equal(again.code, 0, show(again));
      const v = await offsiteRun(s, ['verify']);
      assert.equal(v.code, 0, show(v));
      assert.deepEqual(await restoreAll(s, [g1]), [g1.id]);
    } finally {
      await proxy.stop();
    }
  },
);
