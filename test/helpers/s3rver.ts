/**
 * s3rver (npm, in-process) on a free 127.0.0.1 port with one plain bucket in a temporary directory:
 * the second S3 implementation the offsite tests run against. It has no versioning, no Object Lock
 * and no conditional writes, so the store runs with the `generic` profile and no objectLock here.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OffsiteStoreOptions } from '../../src/offsite/s3-store.js';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

export interface S3rverServer {
  endpoint: string;
  bucket: string;
  env: NodeJS.ProcessEnv;
  storeOptions(extra?: Partial<OffsiteStoreOptions>): OffsiteStoreOptions;
  stop(): Promise<void>;
}

export async function startS3rver(bucket = 'baton-plain'): Promise<S3rverServer> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
  const directory = await mkdtemp(join(tmpdir(), 'baton-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    // s3rver's own fixed test keys (it checks signatures against them).
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
    storeOptions: (extra = {}) => ({
      endpoint,
      region: 'us-east-1',
      bucket,
      prefix: 'plain',
      forcePathStyle: true,
      provider: 'generic',
      credentials: { env: true },
      ...extra,
    }),
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
