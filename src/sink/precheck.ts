import { join } from 'node:path';
import { DEFAULT_MANIFEST_LIMITS, pathKey, type ManifestEntry } from '../core/manifest.js';
import { readManifest } from '../adapters/manifest-file.js';

export interface Precheck {
  entries: number;
  files: number;
  bytes: number;
  /** bytes of files that cannot be hard-linked to the link base (new or changed) */
  newBytes: number;
}

/**
 * Reads a pulled manifest before the tree is fetched: validates every line (hostile input,
 * throws ManifestError), bounds the entry count, and sums what the tree will cost on disk.
 */
export async function precheckManifest(
  dir: string,
  maxFiles: number,
  linkBase: ReadonlyMap<string, ManifestEntry> | undefined,
): Promise<Precheck> {
  const r: Precheck = { entries: 0, files: 0, bytes: 0, newBytes: 0 };
  for await (const e of readManifest(join(dir, 'manifest'), {
    ...DEFAULT_MANIFEST_LIMITS,
    maxEntries: maxFiles,
  })) {
    r.entries++;
    if (e.type !== 'f') continue;
    r.files++;
    r.bytes += e.size;
    const base = linkBase?.get(pathKey(e.path));
    if (!(base && base.sha256 === e.sha256 && base.size === e.size)) r.newBytes += e.size;
  }
  return r;
}
