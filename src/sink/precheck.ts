import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MANIFEST_LIMITS } from '../core/manifest.js';
import { ManifestCursor, readManifest } from '../generation/manifest-file.js';
import { MANIFEST } from '../generation/names.js';
import { BitSet } from '../core/bit-set.js';

export interface Precheck {
  entries: number;
  files: number;
  bytes: number;
  /**
   * bytes of files that cannot be hard-linked to the link base (new or changed) and are not already
   * complete in the tree an interrupted pull left (`partialTree`)
   */
  newBytes: number;
  /** the largest file declared (rsync's --max-size for the tree) */
  largest: number;
  /** bytes of link-base files at the paths of changed files: what rsync may read as delta bases */
  basisBytes: number;
  /** bytes of new files already complete in `partialTree` (rsync skips them when it resumes) */
  resumedBytes: number;
  /**
   * the ordinals (in manifest order, every entry counted) of the files the link base holds at the
   * same path with the same sha256 and size: verify takes them from here instead of reading the link
   * base's manifest a second time (valid for this very manifest only: verify checks its hash again)
   */
  sameAsBase: BitSet;
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
  /** the tree an interrupted pull of this generation left in `.incoming/<id>`, resumed by rsync */
  partialTree?: string,
): Promise<Precheck> {
  const r: Precheck = {
    entries: 0,
    files: 0,
    bytes: 0,
    newBytes: 0,
    largest: 0,
    basisBytes: 0,
    resumedBytes: 0,
    sameAsBase: new BitSet(),
  };
  const partial = partialTree === undefined ? undefined : Buffer.from(`${partialTree}/`);
  const base = linkBaseManifest === undefined ? undefined : ManifestCursor.open(linkBaseManifest);
  try {
    for await (const e of readManifest(join(dir, MANIFEST), {
      ...DEFAULT_MANIFEST_LIMITS,
      maxEntries: maxFiles,
    })) {
      r.entries++;
      if (e.type !== 'f') continue;
      r.files++;
      r.bytes += e.size;
      r.largest = Math.max(r.largest, e.size);
      const b = await base?.seek(e.path);
      const same = b?.type === 'f' && b.sha256 === e.sha256 && b.size === e.size;
      if (same) r.sameAsBase.add(r.entries - 1);
      // a later name of a data hard link is a link to its first name (rsync -H): no new blocks
      if (e.linkTo !== undefined) continue;
      if (same) continue;
      if (b?.type === 'f') r.basisBytes += b.size;
      if (partial && completeIn(partial, e.path, e.size, e.mtimeNs)) r.resumedBytes += e.size;
      else r.newBytes += e.size;
    }
  } finally {
    await base?.close().catch(() => undefined);
  }
  return r;
}

/**
 * True when an interrupted pull left this file complete (a regular file of the manifest's size and
 * mtime: rsync's own quick check, so the resumed rsync skips it and its blocks are already paid).
 */
function completeIn(partial: Buffer, rel: Buffer, size: number, mtimeNs: bigint): boolean {
  try {
    // synchronous: one cached metadata call costs less than a thread-pool round trip (see walkTree)
    const st = lstatSync(Buffer.concat([partial, rel]), { bigint: true });
    // rsync -t keeps mtimes to the second at least (sub-second where both sides can)
    return (
      st.isFile() && st.size === BigInt(size) && st.mtimeNs / 1_000_000_000n === mtimeNs / 1_000_000_000n
    );
  } catch {
    return false;
  }
}
