import type { OffsiteConfig } from '../config/schema.js';
import type { ObjectStore } from './object-store.js';
import type { OffsiteStoreOptions } from './s3-store.js';

/** The `offsite:` config as the S3 store's options (credentials: the file, else the SDK's default chain). */
export function storeOptionsOf(cfg: OffsiteConfig): OffsiteStoreOptions {
  return {
    ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
    region: cfg.region,
    bucket: cfg.bucket,
    prefix: cfg.prefix,
    provider: cfg.provider,
    ...(cfg.forcePathStyle === undefined
      ? cfg.provider === 'minio' || cfg.provider === 'ceph' || cfg.provider === 'generic'
        ? { forcePathStyle: true }
        : {}
      : { forcePathStyle: cfg.forcePathStyle }),
    ...(cfg.credentials?.file === undefined
      ? {}
      : {
          credentials: {
            file: cfg.credentials.file,
            ...(cfg.credentials.profile === undefined ? {} : { profile: cfg.credentials.profile }),
          },
        }),
    ...(cfg.objectLock === undefined
      ? {}
      : { objectLock: { mode: cfg.objectLock.mode, retainDays: cfg.objectLock.retain / 86_400_000 } }),
    multipart: { concurrency: 1 },
  };
}

/** The configured bucket as an ObjectStore. */
export async function openOffsiteStore(cfg: OffsiteConfig): Promise<ObjectStore> {
  // baton supports Node 20 (package.json engines): the SDK's multi-line notice about its own future
  // Node support would break the one-line error contract on stderr
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // loaded only here: the AWS SDK is ~20 MiB of heap that `source backup` and the gate never need
  // (the bundle puts it in a chunk of its own, scripts/bundle.mjs)
  const { resolveOffsiteStore } = await import('./s3-store.js');
  return resolveOffsiteStore(storeOptionsOf(cfg));
}
