import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  PROVIDER_PROFILES,
  PROVIDERS,
  backoffMs,
  choosePartSize,
  parseCredentialsFile,
  resolveOffsiteStore,
} from '../../src/offsite/s3-store.js';

const MiB = 1024 * 1024;
const aws = PROVIDER_PROFILES.aws;

test('choosePartSize: the preferred size while it fits 10,000 parts, then grown; never below the minimum', () => {
  assert.equal(choosePartSize(100 * MiB, aws, 16 * MiB), 16 * MiB);
  assert.equal(choosePartSize(100 * MiB, aws, 1 * MiB), 5 * MiB);
  assert.equal(choosePartSize(200_000 * MiB, aws, 16 * MiB), 20 * MiB);
  assert.throws(() => choosePartSize(6 * 1024 * 1024 * MiB * 10_000, aws, 16 * MiB), /too large/);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 * 1024 * 1024 * MiB }),
      fc.integer({ min: 1, max: 64 * MiB }),
      (size, preferred) => {
        const part = choosePartSize(size, aws, preferred);
        assert.ok(part >= aws.minPartSize);
        assert.ok(part >= preferred);
        assert.ok(part <= aws.maxPartSize);
        assert.ok(Math.ceil(size / part) <= aws.maxParts);
      },
    ),
  );
});

test('backoffMs: grows, stays within half..full of the capped ceiling', () => {
  assert.equal(
    backoffMs(1, 100, 1000, () => 0),
    50,
  );
  assert.equal(
    backoffMs(1, 100, 1000, () => 1),
    100,
  );
  assert.equal(
    backoffMs(3, 100, 1000, () => 1),
    400,
  );
  assert.equal(
    backoffMs(30, 100, 1000, () => 1),
    1000,
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (a, r) => {
      const d = backoffMs(a, 250, 8000, () => r);
      assert.ok(d >= 0 && d <= 8000);
    }),
  );
});

test('parseCredentialsFile: the named section of an AWS shared-credentials file', () => {
  const text = [
    '# comment',
    '[default]',
    'aws_access_key_id = AKIADEFAULT',
    'aws_secret_access_key = s3cr3t/default',
    '',
    '[profile offsite]',
    'aws_access_key_id=AKIAOFF',
    'aws_secret_access_key=off=secret',
    'aws_session_token = tok',
  ].join('\r\n');
  assert.deepEqual(parseCredentialsFile(text, 'default', 'f'), {
    accessKeyId: 'AKIADEFAULT',
    secretAccessKey: 's3cr3t/default',
  });
  assert.deepEqual(parseCredentialsFile(text, 'offsite', 'f'), {
    accessKeyId: 'AKIAOFF',
    secretAccessKey: 'off=secret',
    sessionToken: 'tok',
  });
  assert.throws(
    () => parseCredentialsFile(text, 'other', '/etc/baton/s3'),
    (e: Error) => e.name === 'ConfigError' && /\/etc\/baton\/s3 has no .* in \[other\]/.test(e.message),
  );
  assert.throws(
    () => parseCredentialsFile('[default]\naws_access_key_id=x\n', 'default', 'f'),
    /ConfigError|has no/,
  );
});

test('provider profiles: WHEN_REQUIRED except aws/minio; Content-MD5 and the 10,000-part limit everywhere', () => {
  for (const p of PROVIDERS) {
    const prof = PROVIDER_PROFILES[p];
    assert.equal(prof.maxParts, 10_000);
    assert.equal(prof.contentMd5, true);
    assert.equal(prof.checksum, p === 'aws' || p === 'minio' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED');
  }
});

test('resolveOffsiteStore: config errors are one line; describe carries no credentials', async () => {
  await assert.rejects(
    resolveOffsiteStore({ bucket: 'b', provider: 'r2', objectLock: { mode: 'governance', retainDays: 30 } }),
    /provider r2 does not support per-object Object Lock/,
  );
  await assert.rejects(
    resolveOffsiteStore({ bucket: 'b', credentials: { env: true } }, {}),
    /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set/,
  );
  await assert.rejects(
    resolveOffsiteStore({ bucket: 'b', credentials: { file: '/nonexistent/baton-creds' } }),
    /credentials file \/nonexistent\/baton-creds: ENOENT/,
  );
  await assert.rejects(resolveOffsiteStore({ bucket: 'bad/bucket' }), /bad bucket name/);
  const s = await resolveOffsiteStore(
    { bucket: 'b', prefix: '/p/q/', endpoint: 'http://127.0.0.1:9', credentials: { env: true } },
    { AWS_ACCESS_KEY_ID: 'AKIASECRETID', AWS_SECRET_ACCESS_KEY: 'very-secret-value' },
  );
  try {
    assert.equal(s.describe, 's3://b/p/q at http://127.0.0.1:9');
    await assert.rejects(s.put('../x', new Uint8Array(1)), /bad object key/);
    await assert.rejects(s.put('a\nb', new Uint8Array(1)), /bad object key/);
    await assert.rejects(s.get('x', { range: { start: 5, end: 1 }, maxBytes: 10 }), /bad range/);
    await assert.rejects(s.get('x', { range: { start: 0, end: 99 }, maxBytes: 10 }), /exceeds 10/);
  } finally {
    s.close();
  }
});
