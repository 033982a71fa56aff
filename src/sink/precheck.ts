import { join } from 'node:path';
import { DEFAULT_MANIFEST_LIMITS } from '../core/manifest.js';
import { ManifestCursor, readManifest } from '../adapters/manifest-file.js';

export interface Precheck {
  entries: number;
  files: number;
  bytes: number;
  /** bytes of files that cannot be hard-linked to the link base (new or changed) */
  newBytes: number;
  /** the largest file declared (rsync's --max-size for the tree) */
  largest: number;
  /** bytes of link-base files at the paths of changed files: what rsync may read as delta bases */
  basisBytes: number;
}

/**
 * Reads a pulled manifest before the tree is fetched: validates every line (hostile input,
 * throws ManifestError), bounds the entry count, and sums what the tree will cost on disk.
 * `linkBaseManifest` (the manifest of the generation the pull hard-links to) is read alongside,
 * in tree order: memory stays constant whatever the file count. A bad or missing link base
 * only makes the estimate larger (every file counted as new).
 */
export async function precheckManifest(
  dir: string,
  maxFiles: number,
  linkBaseManifest: string | undefined,
): Promise<Precheck> {
  const r: Precheck = { entries: 0, files: 0, bytes: 0, newBytes: 0, largest: 0, basisBytes: 0 };
  const base = linkBaseManifest === undefined ? undefined : ManifestCursor.open(linkBaseManifest);
  try {
    for await (const e of readManifest(join(dir, 'manifest'), {
      ...DEFAULT_MANIFEST_LIMITS,
      maxEntries: maxFiles,
    })) {
      r.entries++;
      if (e.type !== 'f') continue;
      r.files++;
      r.bytes += e.size;
      r.largest = Math.max(r.largest, e.size);
      const b = await base?.seek(e.path);
      if (!(b?.type === 'f' && b.sha256 === e.sha256 && b.size === e.size)) {
        r.newBytes += e.size;
        if (b?.type === 'f') r.basisBytes += b.size;
      }
    }
  } finally {
    await base?.close().catch(() => undefined);
  }
  return r;
}
