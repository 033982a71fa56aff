/**
 * The object-store layer against real S3 APIs: moto_server (versioning, Object Lock, conditional
 * writes, multipart) and s3rver (plain), with a loopback fault proxy in front of moto for 503
 * SlowDown, resets mid-body, truncated and stalled responses. No system users: no flock needed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { ObjectExistsError, ObjectMissingError } from '../../src/offsite/object-store.js';
import { resolveOffsiteStore, type OffsiteStoreOptions, type S3Store } from '../../src/offsite/s3-store.js';
import { assertOneLine, collect, conformance } from '../helpers/object-store-suite.js';
import { startFaultProxy, type FaultProxy } from '../helpers/s3-fault-proxy.js';
import { startMoto, freePort, type MotoServer } from '../helpers/moto.js';
import { startS3rver, type S3rverServer } from '../helpers/s3rver.js';

const FAST_RETRY = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'baton-offsite-store-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('offsite store on moto', () => {
  let moto: MotoServer;
  let proxy: FaultProxy;
  const stores: S3Store[] = [];
  const open = async (extra: Partial<OffsiteStoreOptions>): Promise<S3Store> => {
    const s = await resolveOffsiteStore(
      moto.storeOptions({
        multipart: { partSize: 64 * 1024, minPartSize: 1024, concurrency: 2 },
        retry: FAST_RETRY,
        timeouts: { connectMs: 2000, idleMs: 2000 },
        ...extra,
      }),
      moto.env,
    );
    stores.push(s);
    return s;
  };
  before(async () => {
    moto = await startMoto({ partMinSize: 1024, listPageSize: 2 }); // listings span pages
    proxy = await startFaultProxy(moto.endpoint);
  });
  after(async () => {
    for (const s of stores) s.close();
    await proxy?.stop();
    await moto?.stop();
  });

  for (const provider of ['generic', 'aws'] as const) {
    conformance(`moto ${provider}`, (prefix) => open({ provider, prefix }));
    conformance(
      `moto ${provider} locked`,
      (prefix) => open({ provider, prefix, objectLock: { mode: 'governance', retainDays: 60 / 86400 } }),
      true,
    );
  }
  conformance('moto via proxy', (prefix) => open({ endpoint: proxy.endpoint, prefix }));

  test('every PUT and part carries Content-MD5 or a checksum header', async () => {
    for (const provider of ['generic', 'aws', 'b2'] as const) {
      const s = await open({ provider, endpoint: proxy.endpoint, prefix: `md5-${provider}` });
      const first = proxy.seen.length;
      await s.put('one', randomBytes(1000));
      const f = join(tmp, `md5-${provider}`);
      await writeFile(f, randomBytes(200_000));
      await s.putFile('multi', f, 200_000);
      const puts = proxy.seen.slice(first).filter((r) => r.method === 'PUT');
      assert.ok(puts.length >= 5, `${provider}: ${puts.length} PUTs`);
      for (const r of puts) {
        assert.ok(
          typeof r.headers['content-md5'] === 'string' ||
            typeof r.headers['x-amz-sdk-checksum-algorithm'] === 'string',
          `${provider} ${r.url} has neither Content-MD5 nor a checksum`,
        );
      }
    }
  });

  test('conditional put: a clash throws ObjectExistsError and leaves the first object', async () => {
    const s = await open({ prefix: 'cond', objectLock: { mode: 'governance', retainDays: 1 / 86400 } });
    await s.put('commits/a/data/1', Buffer.from('first'), { ifNoneMatch: true });
    await assert.rejects(s.put('commits/a/data/1', Buffer.from('second'), { ifNoneMatch: true }), (e) => {
      assert.ok(e instanceof ObjectExistsError);
      return assertOneLine(e, /already exists/, [moto.credentials.secretAccessKey]);
    });
    assert.equal(Buffer.from(await s.get('commits/a/data/1', { maxBytes: 100 })).toString(), 'first');
    const f = join(tmp, 'cond-multi');
    await writeFile(f, randomBytes(200_000));
    await assert.rejects(s.putFile('commits/a/data/1', f, 200_000, { ifNoneMatch: true }), ObjectExistsError);
    assert.equal(Buffer.from(await s.get('commits/a/data/1', { maxBytes: 100 })).toString(), 'first');
    await s.putFile('commits/a/data/2', f, 200_000, { ifNoneMatch: true });
    await assert.rejects(s.putFile('commits/a/data/2', f, 200_000, { ifNoneMatch: true }), ObjectExistsError);
  });

  test('Object Lock: a locked object is retained (all versions), deleted after expiry', async () => {
    const s = await open({ prefix: 'lock', objectLock: { mode: 'governance', retainDays: 1 / 86400 } });
    const until = new Date(Date.now() + 3000);
    await s.put('packs/aa/p', Buffer.from('v1'), { retainUntil: until });
    await s.put('packs/aa/p', Buffer.from('v2'), { retainUntil: until }); // a second version, also locked
    await s.put('packs/aa/q', Buffer.from('short')); // the store default: now + 1 s
    assert.equal(await s.delete('packs/aa/p'), 'retained');
    assert.equal(Buffer.from(await s.get('packs/aa/p', { maxBytes: 10 })).toString(), 'v2');
    await new Promise((r) => setTimeout(r, 3200));
    assert.equal(await s.delete('packs/aa/q'), 'deleted');
    assert.equal(await s.delete('packs/aa/p'), 'deleted');
    const versions = await moto
      .client()
      .send(new ListObjectVersionsCommand({ Bucket: moto.bucket, Prefix: 'lock/packs/aa/' }));
    assert.deepEqual([...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])], []);
    assert.equal(await s.head('packs/aa/p'), undefined);
  });

  test('Object Lock: extendRetention lengthens, never shortens', async () => {
    const s = await open({ prefix: 'extend', objectLock: { mode: 'compliance', retainDays: 1 / 86400 } });
    await s.put('packs/bb/p', Buffer.from('x'), { retainUntil: new Date(Date.now() + 2000) });
    const later = new Date(Date.now() + 3_600_000);
    await s.extendRetention('packs/bb/p', later);
    const raw = moto.client();
    const h1 = await raw.send(new HeadObjectCommand({ Bucket: moto.bucket, Key: 'extend/packs/bb/p' }));
    const got = h1.ObjectLockRetainUntilDate?.getTime() ?? 0;
    assert.ok(got >= later.getTime() - 1000 && got <= later.getTime(), `${got} vs ${later.getTime()}`);
    assert.equal(h1.ObjectLockMode, 'COMPLIANCE');
    await s.extendRetention('packs/bb/p', new Date(Date.now() + 1000)); // sooner: ignored
    const h2 = await raw.send(new HeadObjectCommand({ Bucket: moto.bucket, Key: 'extend/packs/bb/p' }));
    assert.equal(h2.ObjectLockRetainUntilDate?.getTime(), h1.ObjectLockRetainUntilDate?.getTime());
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal(await s.delete('packs/bb/p'), 'retained');
    await assert.rejects(s.extendRetention('packs/bb/none', later), ObjectMissingError);
  });

  test('multipart with a small part size: parts chosen from size, byte-exact', async () => {
    const s = await open({ endpoint: proxy.endpoint, prefix: 'mp' });
    const data = randomBytes(5 * 64 * 1024 + 100);
    const f = join(tmp, 'mp');
    await writeFile(f, data);
    const first = proxy.seen.length;
    await s.putFile('big', f, data.length);
    const parts = proxy.seen.slice(first).filter((r) => r.method === 'PUT' && r.url.includes('partNumber='));
    assert.equal(parts.length, 6);
    assert.ok(Buffer.from(await s.get('big', { maxBytes: data.length })).equals(data));
  });

  test('faults: SlowDown, reset mid-body, truncated and stalled responses are retried', async () => {
    const s = await open({
      endpoint: proxy.endpoint,
      prefix: 'faults',
      timeouts: { connectMs: 2000, idleMs: 400 },
    });
    const data = randomBytes(100_000);
    proxy.inject('slowdown', 2, { method: 'PUT' });
    await s.put('a', data);
    for (const fault of ['reset', 'truncate', 'slowdown'] as const) {
      proxy.inject(fault, 2, { method: 'GET' });
      assert.ok(Buffer.from(await s.get('a', { maxBytes: data.length })).equals(data), fault);
      assert.equal(proxy.pending(), 0);
    }
    proxy.inject('slow', 1, { method: 'GET', delayMs: 1500 });
    assert.ok(Buffer.from(await s.get('a', { maxBytes: data.length })).equals(data));
    proxy.inject('truncate', 1, { method: 'GET', url: 'list-type=2' });
    assert.deepEqual(await collect(s.list('')), [['a', data.length]]);
    // Multipart: a part hit by SlowDown and one reset after the server stored it.
    const f = join(tmp, 'faults-mp');
    const big = randomBytes(4 * 64 * 1024);
    await writeFile(f, big);
    proxy.inject('slowdown', 1, { method: 'PUT', url: 'partNumber=2' });
    proxy.inject('reset', 1, { method: 'PUT', url: 'partNumber=3' });
    await s.putFile('mp', f, big.length);
    assert.equal(proxy.pending(), 0);
    assert.ok(Buffer.from(await s.get('mp', { maxBytes: big.length })).equals(big));
  });

  test('list follows continuation tokens across pages (moto pages of 2 here)', async () => {
    const s = await open({ endpoint: proxy.endpoint, prefix: 'pages' });
    const keys = ['a/1', 'a/2', 'a/3', 'a/4', 'a/5', 'b/1'];
    for (const k of keys) await s.put(k, Buffer.from(k));
    const first = proxy.seen.length;
    assert.deepEqual(
      (await collect(s.list('a/'))).map(([k]) => k),
      keys.slice(0, 5),
    );
    const lists = proxy.seen.slice(first).filter((r) => r.url.includes('list-type=2'));
    assert.equal(lists.length, 3);
    assert.ok(lists.slice(1).every((r) => r.url.includes('continuation-token=')));
  });

  test('faults: a conditional PUT whose reply was lost is recognised as our own write', async () => {
    const s = await open({ endpoint: proxy.endpoint, prefix: 'ambiguous' });
    proxy.inject('reset', 1, { method: 'PUT' });
    await s.put('commits/x', Buffer.from('commit'), { ifNoneMatch: true });
    assert.equal(proxy.pending(), 0);
    await assert.rejects(s.put('commits/x', Buffer.from('other'), { ifNoneMatch: true }), ObjectExistsError);
  });

  test('faults beyond the retry limit: one-line failure naming operation, store and reason', async () => {
    const s = await open({ endpoint: proxy.endpoint, prefix: 'limit' });
    proxy.inject('slowdown', FAST_RETRY.attempts, { method: 'PUT' });
    await assert.rejects(s.put('k', Buffer.from('x')), (e) =>
      assertOneLine(e, /^PUT k in s3:\/\/baton-test\/limit at .* failed after 4 attempts: 503 SlowDown/, [
        moto.credentials.secretAccessKey,
        moto.credentials.accessKeyId,
      ]),
    );
    assert.equal(await s.head('k'), undefined);
    await s.put('k', Buffer.from('x'));
    proxy.inject('reset', FAST_RETRY.attempts, { method: 'GET' });
    await assert.rejects(s.get('k', { maxBytes: 10 }), (e) =>
      assertOneLine(e, /failed after 4 attempts/, []),
    );
    proxy.inject('slow', FAST_RETRY.attempts, { method: 'HEAD', delayMs: 1500 });
    const slow = await open({
      endpoint: proxy.endpoint,
      prefix: 'limit',
      timeouts: { connectMs: 500, idleMs: 300 },
    });
    await assert.rejects(slow.head('k'), (e) => assertOneLine(e, /HEAD k .*failed after 4 attempts/, []));
  });

  test('missing bucket, endpoint down: one line', async () => {
    const nb = await open({ bucket: 'no-such-bucket' });
    await assert.rejects(nb.put('k', Buffer.from('x')), (e) =>
      assertOneLine(e, /bucket no-such-bucket does not exist/, [moto.credentials.secretAccessKey]),
    );
    await assert.rejects(nb.get('k', { maxBytes: 10 }), (e) => assertOneLine(e, /does not exist/, []));
    const port = await freePort();
    const down = await open({ endpoint: `http://127.0.0.1:${port}` });
    await assert.rejects(down.put('k', Buffer.from('x')), (e) =>
      assertOneLine(
        e,
        /failed after 4 attempts: endpoint http:\/\/127\.0\.0\.1:\d+ unreachable \(ECONNREFUSED\)/,
        [moto.credentials.secretAccessKey],
      ),
    );
  });
});

describe('offsite store: wrong credentials', () => {
  let moto: MotoServer;
  before(async () => {
    moto = await startMoto({ rejectCredentials: true });
  });
  after(async () => {
    await moto?.stop();
  });
  test('wrong credentials: one line, no key material', async () => {
    const s = await resolveOffsiteStore(moto.storeOptions({ retry: FAST_RETRY }), moto.env);
    try {
      await assert.rejects(s.put('k', Buffer.from('x')), (e) =>
        assertOneLine(e, /credentials refused by http:\/\/127\.0\.0\.1:\d+ \(InvalidAccessKeyId\)/, [
          moto.credentials.secretAccessKey,
          moto.credentials.accessKeyId,
        ]),
      );
      await assert.rejects(s.get('k', { maxBytes: 10 }), (e) => assertOneLine(e, /credentials refused/, []));
    } finally {
      s.close();
    }
  });
});

describe('offsite store on s3rver', () => {
  let srv: S3rverServer;
  const stores: S3Store[] = [];
  before(async () => {
    srv = await startS3rver();
  });
  after(async () => {
    for (const s of stores) s.close();
    await srv?.stop();
  });
  conformance('s3rver', async (prefix) => {
    const s = await resolveOffsiteStore(
      srv.storeOptions({ prefix, retry: FAST_RETRY, multipart: { partSize: 64 * 1024, minPartSize: 1024 } }),
      srv.env,
    );
    stores.push(s);
    return s;
  });
});
