import { lstat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../adapters/fsx.js';
import { TREE } from '../generation/names.js';
import { sameIdentity } from '../generation/verify.js';

/**
 * Hashing that overlaps the tree transfer. rsync names each file once it is complete (renamed into
 * place: an `--out-format` with `%b` is logged after the transfer, not before it); the file is hashed
 * right then, while rsync goes on with the next ones, and verification later takes that hash instead
 * of reading the file again.
 *
 * Nothing here is trusted blindly: a hash is only ever handed out for the very file that was hashed
 * (same inode, size, mtime and ctime to the nanosecond, checked again at verification), so a name
 * misread from rsync's output, or a file changed since, only costs a second read, never a wrong
 * verdict. Bounded: at most MAX_REMEMBERED hashes are kept and MAX_QUEUED names wait; past that,
 * files are simply left to verification.
 */

/** Marks our lines among rsync's other output (progress, `deleting …`). */
const MARK = 'baton-received ';
const MAX_REMEMBERED = 25_000;
const MAX_QUEUED = 10_000;
const IN_FLIGHT = 8;

/** What makes a file the same file: a hash stands only for the file it was taken of. */
interface Identity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

const identityOf = (st: BigIntStats): Identity => ({
  dev: st.dev,
  ino: st.ino,
  size: st.size,
  mtimeNs: st.mtimeNs,
  ctimeNs: st.ctimeNs,
});

export interface Known extends Identity {
  sha256: string;
}

export class EarlyHashes {
  /** rsync options that make it name each completed file on stdout */
  readonly args = [`--out-format=${MARK}%b %n`];
  private readonly known = new Map<string, Known>();
  private readonly queue: string[] = [];
  private inflight = 0;
  private idle: (() => void) | undefined;
  private partial = '';
  private stopped = false;
  /** files hashed while the transfer ran (for the log) */
  hashed = 0;

  /** @param generationDir the `.incoming/<id>` rsync writes into: names are relative to it */
  constructor(private readonly generationDir: string) {}

  /** Feed rsync's stdout here (it may be split anywhere). */
  readonly onStdout = (chunk: Buffer): void => {
    if (this.stopped) return;
    const text = this.partial + chunk.toString('latin1');
    const records = text.split(/[\r\n]/);
    this.partial = records.pop() ?? '';
    for (const rec of records) {
      if (!rec.startsWith(MARK)) continue;
      // `<bytes> <name>`: the name is everything after the first space, rsync-escaped
      const name = unescapeRsync(rec.slice(rec.indexOf(' ', MARK.length) + 1));
      if (!name.startsWith('tree/') || name.endsWith('/')) continue;
      if (this.queue.length >= MAX_QUEUED || this.known.size >= MAX_REMEMBERED) continue;
      this.queue.push(name.slice('tree/'.length));
    }
    this.pump();
  };

  private pump(): void {
    while (!this.stopped && this.inflight < IN_FLIGHT && this.queue.length > 0) {
      const rel = this.queue.shift() as string;
      this.inflight++;
      void this.hashOne(rel).finally(() => {
        this.inflight--;
        this.pump();
        if (this.inflight === 0 && (this.stopped || this.queue.length === 0)) this.idle?.();
      });
    }
  }

  private async hashOne(rel: string): Promise<void> {
    const path = Buffer.concat([
      Buffer.from(`${join(this.generationDir, TREE)}/`),
      Buffer.from(rel, 'latin1'),
    ]);
    try {
      const before = await lstat(path, { bigint: true });
      if (!before.isFile()) return;
      const sha256 = await sha256File(path, Number(before.size));
      // the hash stands for the file only if nothing changed while it was read
      const after = await lstat(path, { bigint: true });
      if (!sameIdentity(identityOf(before), identityOf(after))) return;
      if (this.known.size < MAX_REMEMBERED) {
        this.known.set(rel, { sha256, ...identityOf(after) });
        this.hashed++;
      }
    } catch {
      // gone, unreadable, a name misread: verification reads it itself
    }
  }

  /** Stops taking names (rsync has ended) and waits for the hashes already started. */
  async finish(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    if (this.inflight === 0) return;
    await new Promise<void>((resolve) => (this.idle = resolve));
  }

  /**
   * The hash taken during the transfer of the file at `rel` (inside tree/) with the identity of the
   * file it was taken of: the verification takes it only for that very file.
   */
  candidate(rel: Buffer): Known | undefined {
    return this.known.get(rel.toString('latin1'));
  }

  /** The hash taken during the transfer of the file at `rel` (inside tree/), if `st` is still that file. */
  lookup(rel: Buffer, st: BigIntStats): string | undefined {
    const k = this.known.get(rel.toString('latin1'));
    return k && sameIdentity(k, identityOf(st)) ? k.sha256 : undefined;
  }
}

/** rsync writes unprintable bytes of a name as `\#ooo` (octal): back to the raw bytes (latin1 string). */
export function unescapeRsync(s: string): string {
  return s.replace(/\\#([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
