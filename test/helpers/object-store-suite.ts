/**
 * The conformance suite every ObjectStore implementation runs (restic's backend test suite idea):
 * the in-memory store in unit tests, moto_server and s3rver in e2e.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ObjectMissingError, OffsiteError, type ObjectStore } from '../../src/offsite/object-store.js';

export async function collect(
  it: AsyncIterable<{ key: string; size: number }>,
): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  for await (const o of it) out.push([o.key, o.size]);
  return out;
}

export function assertOneLine(err: unknown, pattern: RegExp, secrets: string[]): true {
  assert.ok(err instanceof OffsiteError || (err instanceof Error && err.name === 'ConfigError'), String(err));
  assert.doesNotMatch(err.message, /\n/);
  assert.match(err.message, pattern);
  for (const s of secrets) assert.ok(!err.message.includes(s), `message leaks a credential: ${err.message}`);
  return true;
}

/** What every implementation must do (restic's backend test suite idea). */
export function conformance(
  name: string,
  open: (prefix: string) => Promise<ObjectStore>,
  locked = false,
): void {
  test(`${name}: put/get byte-exact, ranged and bounded reads, head, list, delete`, async () => {
    const s = await open(`conf-${randomBytes(4).toString('hex')}`);
    const big = randomBytes(200_000);
    await s.put('packs/ab/one', big);
    await s.put('packs/cd/two', new Uint8Array([1, 2, 3]));
    await s.put('index/one', new Uint8Array(0));
    assert.ok(Buffer.from(await s.get('packs/ab/one', { maxBytes: big.length })).equals(big));
    assert.equal((await s.get('index/one', { maxBytes: 10 })).byteLength, 0);
    const part = await s.get('packs/ab/one', { range: { start: 1000, end: 1999 }, maxBytes: 1000 });
    assert.ok(Buffer.from(part).equals(big.subarray(1000, 2000)));
    await assert.rejects(s.get('packs/ab/one', { maxBytes: 1000 }), (e) =>
      assertOneLine(e, /exceed|more than/, []),
    );
    const h = await s.head('packs/ab/one');
    assert.equal(h?.size, big.length);
    assert.ok(h && h.lastModified.getTime() > Date.now() - 600_000);
    assert.equal(await s.head('packs/ab/none'), undefined);
    assert.deepEqual(await collect(s.list('packs/')), [
      ['packs/ab/one', big.length],
      ['packs/cd/two', 3],
    ]);
    assert.deepEqual(await collect(s.list('')), [
      ['index/one', 0],
      ['packs/ab/one', big.length],
      ['packs/cd/two', 3],
    ]);
    await assert.rejects(s.get('packs/ab/none', { maxBytes: 10 }), ObjectMissingError);
    assert.equal(await s.delete('packs/cd/never'), 'deleted');
    if (locked) {
      assert.equal(await s.delete('packs/cd/two'), 'retained');
      assert.equal((await s.head('packs/cd/two'))?.size, 3);
      return;
    }
    assert.equal(await s.delete('packs/cd/two'), 'deleted');
    assert.equal(await s.head('packs/cd/two'), undefined);
    assert.deepEqual(await collect(s.list('packs/')), [['packs/ab/one', big.length]]);
  });

  test(`${name}: putFile, small and multipart`, async (t) => {
    const s = await open(`file-${randomBytes(4).toString('hex')}`);
    const tmp = await mkdtemp(join(tmpdir(), 'baton-store-suite-'));
    t.after(() => rm(tmp, { recursive: true, force: true }));
    const small = join(tmp, `${name}-small`);
    const large = join(tmp, `${name}-large`);
    const smallData = randomBytes(10_000);
    const largeData = randomBytes(300_000 + 17);
    await writeFile(small, smallData);
    await writeFile(large, largeData);
    await s.putFile('small', small, smallData.length);
    await s.putFile('large', large, largeData.length);
    assert.ok(Buffer.from(await s.get('small', { maxBytes: 1e6 })).equals(smallData));
    assert.ok(Buffer.from(await s.get('large', { maxBytes: 1e6 })).equals(largeData));
    await assert.rejects(s.putFile('wrong', large, largeData.length + 1), (e) =>
      assertOneLine(e, /has 300017 bytes, expected 300018/, []),
    );
    assert.equal(await s.head('wrong'), undefined);
  });
}
