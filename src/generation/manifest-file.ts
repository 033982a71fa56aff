import {
  checkEntrySequence,
  DirChain,
  compareTreeOrder,
  LinkGroupCheck,
  MANIFEST_FORMAT_MAX,
  manifestFormat,
  parseManifestLine,
  type ManifestEntry,
  type ManifestLimits,
  DEFAULT_MANIFEST_LIMITS,
} from '../core/manifest.js';
import { readLines } from '../adapters/fsx.js';

export class ManifestError extends Error {}

/**
 * Streams a manifest file's entries, validating each line and the sequence (tree order, no
 * duplicates, parents first) as it goes. Throws ManifestError with the line number on the first
 * problem: a hostile or truncated manifest is rejected before anything is trusted.
 */
export async function* readManifest(
  file: string,
  limits: ManifestLimits & { maxEntries?: number; maxOpenLinkGroups?: number } = DEFAULT_MANIFEST_LIMITS,
): AsyncGenerator<ManifestEntry> {
  let lineNo = 0;
  let prev: ManifestEntry | undefined;
  const dirs = new DirChain();
  const maxEntries = limits.maxEntries ?? Number.MAX_SAFE_INTEGER;
  let format = 1;
  const links = new LinkGroupCheck(limits.maxOpenLinkGroups);
  try {
    for await (const line of readLines(file, limits.maxPathBytes * 6 + 512)) {
      lineNo++;
      if (lineNo === 1) {
        const f = manifestFormat(line);
        if (f === undefined || f < 1)
          throw new ManifestError(`not a baton manifest (first line "${line.slice(0, 40)}")`);
        if (f > MANIFEST_FORMAT_MAX)
          throw new ManifestError(
            `manifest format ${f} is newer than this baton reads (at most ${MANIFEST_FORMAT_MAX}): upgrade baton`,
          );
        format = f;
        continue;
      }
      if (lineNo - 1 > maxEntries) throw new ManifestError(`more than ${maxEntries} entries`);
      const r = parseManifestLine(line, limits, format);
      if (!r.ok) throw new ManifestError(r.error);
      const seq = checkEntrySequence(prev, r.entry, dirs);
      if (seq) throw new ManifestError(seq);
      const linkProblem = links.check(r.entry);
      if (linkProblem) throw new ManifestError(linkProblem);
      prev = r.entry;
      yield r.entry;
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ManifestError(`${file}${lineNo ? `:${lineNo}` : ''}: ${msg}`);
  }
  if (lineNo === 0) throw new ManifestError(`${file}: empty manifest`);
  const incomplete = links.finish();
  if (incomplete) throw new ManifestError(`${file}: ${incomplete}`);
}

/**
 * A forward-only lookup in a manifest, for a walk in tree order: `seek(path)` returns the
 * manifest's entry for `path` (any type), or undefined when it has none, reading the manifest
 * only as far as that path. Paths must be asked in increasing tree order (what `walkTree`
 * yields); memory stays constant whatever the manifest's size.
 * A manifest that turns out bad part-way (ManifestError) ends the lookups: `failure` says why,
 * every later `seek` returns undefined, and the entries already returned stay valid.
 */
export class ManifestCursor {
  private head: ManifestEntry | undefined;
  private ended = false;
  failure: ManifestError | undefined;

  private constructor(private readonly entries: AsyncGenerator<ManifestEntry>) {}

  static open(file: string, limits?: ManifestLimits & { maxEntries?: number }): ManifestCursor {
    return new ManifestCursor(readManifest(file, limits));
  }

  async seek(path: Buffer): Promise<ManifestEntry | undefined> {
    while (!this.ended) {
      if (this.head === undefined) {
        try {
          const n = await this.entries.next();
          if (n.done) {
            this.ended = true;
            break;
          }
          this.head = n.value;
        } catch (e) {
          this.ended = true;
          this.failure = e instanceof ManifestError ? e : new ManifestError(String(e));
          break;
        }
      }
      const order = compareTreeOrder(this.head.path, path);
      if (order > 0) return undefined;
      const e = this.head;
      this.head = undefined;
      if (order === 0) return e;
    }
    return undefined;
  }

  /** Stops reading (closes the file). */
  async close(): Promise<void> {
    this.ended = true;
    await this.entries.return(undefined);
  }
}
