import type { OffsiteConfig } from '../config/schema.js';
import { OffsiteError, type ObjectStore } from './object-store.js';

/** The configured bucket as an ObjectStore. PROVISIONAL until the `s3` helper's s3-store.ts lands. */
export function openOffsiteStore(cfg: OffsiteConfig): Promise<ObjectStore> {
  return Promise.reject(new OffsiteError(`no S3 store implementation yet for ${cfg.bucket}`));
}
