/**
 * Offsite encryption: recipients/identity files, the wrapped master key, object ids, and sealed blobs that
 * are complete age files (cross-checked both ways with age-encryption and with Debian's `age` CLI).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { BatonError, ConfigError, JobError } from '../../src/errors.js';
import {
  BlobOpener,
  BlobOpenError,
  BlobSealer,
  blobId,
  blobIdFromSha256,
  createMasterKey,
  deriveIdKey,
  parseRecipients,
  readIdentityFile,
  readRecipientsFile,
  recipientProblem,
  unwrapMasterKey,
  wrapMasterKey,
} from '../../src/offsite/crypto.js';

let dir = '';
let identity = '';
let recipient = '';
let other = '';
let otherRecipient = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-crypto-'));
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
  other = await generateX25519Identity();
  otherRecipient = await identityToRecipient(other);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function oneLineError(fn: () => unknown, cls: new (...a: never[]) => BatonError, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

async function rejectsOneLine(p: Promise<unknown>, cls: new (...a: never[]) => BatonError, re: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

test('a recipients file with comments and blank lines gives its keys, once each', async () => {
  const path = join(dir, 'recipients');
  await writeFile(path, `# ops team\n\n${recipient}\n  ${otherRecipient}  \n# spare\n${recipient}\n`);
  assert.deepEqual(await readRecipientsFile(path), [recipient, otherRecipient]);
});

test('a bad recipient line is one ConfigError naming the file and line', () => {
  const bad = recipient.slice(0, -1) + (recipient.endsWith('q') ? 'p' : 'q'); // checksum broken
  oneLineError(
    () => parseRecipients(`# c\n${recipient}\n\n${bad}\n`, 'r.txt'),
    ConfigError,
    /^r\.txt:4: .*checksum/,
  );
  oneLineError(() => parseRecipients('ssh-ed25519 AAAA', 'cfg'), ConfigError, /^cfg:1: not an age X25519/);
  oneLineError(() => parseRecipients('# only a comment\n', 'cfg'), ConfigError, /no age recipient/);
  assert.match(recipientProblem('age1pq1' + 'q'.repeat(60))!, /post-quantum/);
  assert.equal(recipientProblem(recipient), undefined);
});

test('an identity file as age-keygen writes it loads; missing or garbage files are one line', async () => {
  const path = join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', path], { stdio: 'ignore' });
  const ids = await readIdentityFile(path);
  assert.equal(ids.length, 1);
  assert.match(ids[0]!, /^AGE-SECRET-KEY-1/);
  await rejectsOneLine(readIdentityFile(join(dir, 'nope')), JobError, /identity file .*nope does not exist/);
  const junk = join(dir, 'junk');
  await writeFile(junk, '# created\nAGE-SECRET-KEY-1NOTAKEY\n');
  await rejectsOneLine(readIdentityFile(junk), JobError, /junk:2: not an age X25519 identity/);
  await rejectsOneLine(readIdentityFile(dir), JobError, /not a regular file/);
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked');
    await writeFile(locked, identity);
    await chmod(locked, 0);
    await rejectsOneLine(readIdentityFile(locked), JobError, /cannot read identity file/);
  }
});

test('the master key wraps to the recipients and unwraps with either identity; a wrong one is one line', async () => {
  const mk = createMasterKey();
  assert.equal(mk.length, 32);
  const wrapped = await wrapMasterKey(mk, [recipient, otherRecipient]);
  assert.deepEqual(await unwrapMasterKey(wrapped, [identity], 'id.txt'), mk);
  assert.deepEqual(await unwrapMasterKey(wrapped, [other], 'id.txt'), mk);
  const stranger = await generateX25519Identity();
  await rejectsOneLine(
    unwrapMasterKey(wrapped, [stranger], 'wrong.txt'),
    JobError,
    /identity in wrong\.txt is not one of this repository's recipients/,
  );
  await rejectsOneLine(
    unwrapMasterKey('AAAA', [identity], 'id.txt'),
    JobError,
    /key in the bucket's config is damaged/,
  );
});

test('ids: HMAC-SHA256(idKey, sha256(plain)) when encrypted, sha256 when plain; idKey is a fixed HKDF', () => {
  const mk = new Uint8Array(32).fill(7);
  const idKey = deriveIdKey(mk);
  assert.equal(idKey.length, 32);
  assert.deepEqual(deriveIdKey(mk), idKey);
  assert.notDeepEqual(deriveIdKey(new Uint8Array(32).fill(8)), idKey);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 500 }), (plain) => {
      const digest = createHash('sha256').update(plain).digest();
      assert.equal(blobId(undefined, plain), digest.toString('hex'));
      const want = createHmac('sha256', idKey).update(digest).digest('hex');
      assert.equal(blobId(idKey, plain), want);
      assert.equal(blobIdFromSha256(idKey, digest.toString('hex')), want);
      assert.notEqual(want, digest.toString('hex'));
    }),
    { numRuns: 100 },
  );
  assert.throws(() => blobIdFromSha256(idKey, 'ABC'), /not a sha256/);
});

const sizes = fc.oneof(
  fc.constantFrom(0, 1, 65535, 65536, 65537, 131072, 131073),
  fc.integer({ min: 0, max: 300_000 }),
);

test('sealed blobs open to their plaintext, with age-encryption too; every seal has its own nonce', async () => {
  const sealer = await BlobSealer.create([recipient]);
  const opener = new BlobOpener([identity]);
  const lib = new Decrypter();
  lib.addIdentity(identity);
  await fc.assert(
    fc.asyncProperty(sizes, async (n) => {
      const plain = randomBytes(n);
      const sealed = sealer.seal(plain);
      assert.equal(sealed.length, sealer.sealedSize(n));
      assert.deepEqual(Buffer.from(await opener.open(sealed, 'blob')), plain);
      assert.deepEqual(Buffer.from(await lib.decrypt(sealed)), plain);
      assert.notDeepEqual(sealer.seal(plain), sealed);
    }),
    { numRuns: 40 },
  );
});

test('our opener opens what age-encryption writes (to several recipients)', async () => {
  const e = new Encrypter();
  e.addRecipient(otherRecipient);
  e.addRecipient(recipient);
  const opener = new BlobOpener([identity]);
  for (const n of [0, 5, 65536, 200_001]) {
    const plain = randomBytes(n);
    assert.deepEqual(Buffer.from(await opener.open(await e.encrypt(plain), 'b')), plain);
  }
});

test("Debian's age decrypts a blob we sealed, and we open what it encrypts", async () => {
  const idPath = join(dir, 'debian-id.txt');
  await writeFile(idPath, `# test\n${identity}\n`, { mode: 0o600 });
  const sealer = await BlobSealer.create([otherRecipient, recipient]);
  for (const n of [0, 1, 65536, 2 * 65536 + 5]) {
    const plain = randomBytes(n);
    const path = join(dir, `blob-${n}`);
    await writeFile(path, sealer.seal(plain));
    const out = execFileSync('age', ['-d', '-i', idPath, path], { maxBuffer: 1 << 24 });
    assert.deepEqual(out, plain, `age -d of a ${n}-byte blob`);
  }
  const plain = Buffer.from('marker text from the age CLI\n'.repeat(5000));
  const enc = execFileSync('age', ['-e', '-r', recipient], { input: plain, maxBuffer: 1 << 24 });
  assert.deepEqual(Buffer.from(await new BlobOpener([identity]).open(enc, 'cli')), plain);
});

test('tampered, truncated, foreign or wrongly keyed blobs are refused with one line', async () => {
  const sealer = await BlobSealer.create([recipient]);
  const opener = new BlobOpener([identity]);
  const plain = randomBytes(70_000);
  const sealed = Buffer.from(sealer.seal(plain));
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: sealed.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      async (at, x) => {
        const bad = Buffer.from(sealed);
        bad[at]! ^= x;
        await assert.rejects(opener.open(bad, 'pack p @ 0'), (err: unknown) => {
          assert.ok(err instanceof BlobOpenError);
          assert.match(err.message, /^pack p @ 0: /);
          assert.ok(!err.message.includes('\n'));
          return true;
        });
      },
    ),
    { numRuns: 60 },
  );
  for (const cut of [1, 16, 17, 1000]) {
    await rejectsOneLine(opener.open(sealed.subarray(0, sealed.length - cut), 'b'), BlobOpenError, /^b: /);
  }
  await rejectsOneLine(opener.open(Buffer.from('plain text'), 'b'), BlobOpenError, /not an age file/);
  await rejectsOneLine(
    new BlobOpener([other]).open(sealed, 'b'),
    BlobOpenError,
    /identity is not one of the recipients/,
  );
});

/** Splits `b` into pieces at the given fractions (any piece sizes, empty ones included). */
function pieces(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((f) => Math.floor(f * b.length)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, b.length]) {
    out.push(b.subarray(prev, c));
    prev = c;
  }
  return out;
}

async function* iter(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) {
    await Promise.resolve();
    yield p;
  }
}

async function collect(g: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of g) parts.push(p);
  return Buffer.concat(parts);
}

test('streamed sealing and opening agree with the whole-buffer forms, whatever the piece sizes', async () => {
  const sealer = await BlobSealer.create([recipient]);
  const opener = new BlobOpener([identity]);
  const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });
  await fc.assert(
    fc.asyncProperty(sizes, cuts, cuts, async (n, inCuts, outCuts) => {
      const plain = randomBytes(n);
      const sealed = await collect(sealer.sealStream(iter(pieces(plain, inCuts))));
      assert.equal(sealed.length, sealer.sealedSize(n));
      assert.deepEqual(Buffer.from(await opener.open(sealed, 'b')), plain);
      assert.deepEqual(await collect(opener.openStream(iter(pieces(sealed, outCuts)), 'b')), plain);
      assert.deepEqual(
        await collect(opener.openStream(iter(pieces(sealer.seal(plain), outCuts)), 'b')),
        plain,
      );
    }),
    { numRuns: 40 },
  );
});

test("a streamed seal opens with Debian's age; a truncated or damaged stream throws at the end, one line", async () => {
  const idPath = join(dir, 'stream-id.txt');
  await writeFile(idPath, identity, { mode: 0o600 });
  const sealer = await BlobSealer.create([recipient]);
  const plain = randomBytes(3 * 65536);
  const sealed = await collect(sealer.sealStream(iter(pieces(plain, [0.1, 0.5, 0.9]))));
  const path = join(dir, 'streamed');
  await writeFile(path, sealed);
  assert.deepEqual(execFileSync('age', ['-d', '-i', idPath, path], { maxBuffer: 1 << 24 }), plain);
  const opener = new BlobOpener([identity]);
  for (const bad of [sealed.subarray(0, sealed.length - 65536 - 16), sealed.subarray(0, 100)]) {
    await rejectsOneLine(collect(opener.openStream(iter([bad]), 'files map')), BlobOpenError, /^files map: /);
  }
  const flipped = Buffer.from(sealed);
  flipped[flipped.length - 1]! ^= 1;
  await rejectsOneLine(collect(opener.openStream(iter([flipped]), 'm')), BlobOpenError, /decryption failed/);
});
