/**
 * On-disk sorted lookups, so that a push or restore of a million files holds no per-file JS Map:
 *
 * - `SortedTable`: fixed-size records in a file, sorted by a fixed-size binary key, each key once. The
 *   file starts with a 16-byte header (magic, record size, and a caller's `tag`, e.g. the size of the
 *   file it was built from, so a stale table is noticed). A lookup is a binary search over an in-memory
 *   fence (the key of every FENCE-th record: 1/64 of the keys) and one pread of one block: the page cache
 *   holds the file, not the JS heap.
 * - `sortLines`: an external merge sort of text lines (runs of `runBytes` sorted in memory, written to
 *   temp files, merged), so a stream of any length is sorted in bounded memory.
 */
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { open, rm, mkdtemp, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';

const MAGIC = Buffer.from('BTNTBL1\n');
const HEADER = 16;
/** records between two fence keys: one lookup reads FENCE records */
const FENCE = 64;

/** Buffered sequential writes of a file (one syscall per 1 MiB, not per record). */
export class FileSink {
  private buf = Buffer.allocUnsafe(1024 * 1024);
  private used = 0;
  /** bytes written so far (buffered included) */
  size = 0;
  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string, mode = 0o600): Promise<FileSink> {
    return new FileSink(await open(path, 'w', mode));
  }

  async write(data: Uint8Array | string): Promise<void> {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    this.size += b.length;
    if (this.used + b.length > this.buf.length) await this.drain();
    if (b.length > this.buf.length) {
      await this.fh.write(b);
      return;
    }
    this.buf.set(b, this.used);
    this.used += b.length;
  }

  private async drain(): Promise<void> {
    let off = 0;
    while (off < this.used) off += (await this.fh.write(this.buf, off, this.used - off)).bytesWritten;
    this.used = 0;
  }

  /** Overwrites bytes already written (e.g. a header whose value is known at the end). */
  async patch(data: Uint8Array, position: number): Promise<void> {
    await this.drain();
    await this.fh.write(data, 0, data.length, position);
  }

  /** Writes what is buffered, fsyncs when asked, closes. */
  async close(opts: { sync?: boolean } = {}): Promise<void> {
    try {
      await this.drain();
      if (opts.sync === true) await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** Writes a table from records given in strictly ascending key order. */
export class TableWriter {
  private prev: Buffer | undefined;
  count = 0;
  private constructor(
    private readonly sink: FileSink,
    private readonly recordBytes: number,
    private readonly keyBytes: number,
  ) {}

  static async create(
    path: string,
    recordBytes: number,
    keyBytes: number,
    tag: bigint,
  ): Promise<TableWriter> {
    if (!(keyBytes > 0 && keyBytes <= recordBytes && recordBytes < 65536)) throw new Error('bad table shape');
    const sink = await FileSink.create(path);
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h, 0);
    h.writeUInt16BE(recordBytes, 6);
    h.writeBigUInt64BE(tag, 8);
    await sink.write(h);
    return new TableWriter(sink, recordBytes, keyBytes);
  }

  /** Adds a record (key first); a key not above the previous one is refused (Error). */
  async add(record: Uint8Array): Promise<void> {
    if (record.length !== this.recordBytes) throw new Error('record of the wrong size');
    const key = Buffer.from(record.subarray(0, this.keyBytes));
    if (this.prev !== undefined && Buffer.compare(key, this.prev) <= 0)
      throw new Error('table records out of order');
    this.prev = key;
    this.count++;
    await this.sink.write(record);
  }

  /** Closes the table; `tag` (when given) replaces the one of `create`. */
  async close(tag?: bigint): Promise<void> {
    if (tag !== undefined) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64BE(tag);
      await this.sink.patch(t, 8);
    }
    await this.sink.close({ sync: true });
  }

  async abort(): Promise<void> {
    await this.sink.abort();
  }
}

/** A table opened for lookups (sync reads: each is one pread of one block in the page cache). */
export class SortedTable {
  private readonly block: Buffer;
  private constructor(
    private fd: number,
    readonly recordBytes: number,
    readonly keyBytes: number,
    readonly count: number,
    readonly tag: bigint,
    private readonly fence: Buffer,
  ) {
    this.block = Buffer.allocUnsafe(FENCE * recordBytes);
  }

  /**
   * Opens a table and reads its fence (one sequential read of the file, which also checks the order).
   * Undefined when it is missing, of another shape or tag, or not sorted: the caller rebuilds it.
   */
  static open(path: string, recordBytes: number, keyBytes: number, tag?: bigint): SortedTable | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const size = fstatSync(fd).size;
      const h = Buffer.alloc(HEADER);
      if (readSync(fd, h, 0, HEADER, 0) !== HEADER) throw new Error('short');
      const t = h.readBigUInt64BE(8);
      if (
        !h.subarray(0, 6).equals(MAGIC.subarray(0, 6)) ||
        h.readUInt16BE(6) !== recordBytes ||
        (tag !== undefined && t !== tag) ||
        (size - HEADER) % recordBytes !== 0
      )
        throw new Error('foreign');
      const count = (size - HEADER) / recordBytes;
      const fence = Buffer.allocUnsafe(Math.ceil(count / FENCE) * keyBytes);
      const chunk = Buffer.allocUnsafe(FENCE * recordBytes * 256);
      const prev = Buffer.alloc(keyBytes);
      let first = true;
      for (let at = 0; at < count;) {
        const n = Math.min(count - at, FENCE * 256);
        const want = n * recordBytes;
        let got = 0;
        while (got < want) {
          const r = readSync(fd, chunk, got, want - got, HEADER + at * recordBytes + got);
          if (r === 0) throw new Error('short');
          got += r;
        }
        for (let i = 0; i < n; i++) {
          const key = chunk.subarray(i * recordBytes, i * recordBytes + keyBytes);
          if (!first && Buffer.compare(key, prev) <= 0) throw new Error('unsorted');
          first = false;
          key.copy(prev);
          if ((at + i) % FENCE === 0) key.copy(fence, ((at + i) / FENCE) * keyBytes);
        }
        at += n;
      }
      return new SortedTable(fd, recordBytes, keyBytes, count, t, fence);
    } catch {
      closeSync(fd);
      return undefined;
    }
  }

  /** The value bytes (record without its key) of `key`, or undefined; a copy. */
  get(key: Uint8Array): Buffer | undefined {
    if (key.length !== this.keyBytes) throw new Error('key of the wrong size');
    const k = this.keyBytes;
    // the last fence key ≤ key
    let lo = 0;
    let hi = this.fence.length / k - 1;
    if (hi < 0 || Buffer.compare(this.fence.subarray(0, k), key) > 0) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (Buffer.compare(this.fence.subarray(mid * k, mid * k + k), key) <= 0) lo = mid;
      else hi = mid - 1;
    }
    const first = lo * FENCE;
    const n = Math.min(FENCE, this.count - first);
    const want = n * this.recordBytes;
    let got = 0;
    while (got < want) {
      const r = readSync(this.fd, this.block, got, want - got, HEADER + first * this.recordBytes + got);
      if (r === 0) return undefined;
      got += r;
    }
    let a = 0;
    let b = n - 1;
    while (a <= b) {
      const mid = (a + b) >>> 1;
      const off = mid * this.recordBytes;
      const c = Buffer.compare(this.block.subarray(off, off + k), key);
      if (c === 0) return Buffer.from(this.block.subarray(off + k, off + this.recordBytes));
      if (c < 0) a = mid + 1;
      else b = mid - 1;
    }
    return undefined;
  }

  /** Every record in key order (sequential reads). */
  *records(): Generator<Buffer> {
    const chunk = Buffer.allocUnsafe(this.recordBytes * 4096);
    for (let at = 0; at < this.count;) {
      const n = Math.min(this.count - at, 4096);
      const want = n * this.recordBytes;
      let got = 0;
      while (got < want) {
        const r = readSync(this.fd, chunk, got, want - got, HEADER + at * this.recordBytes + got);
        if (r === 0) throw new Error('table shrank while read');
        got += r;
      }
      for (let i = 0; i < n; i++)
        yield Buffer.from(chunk.subarray(i * this.recordBytes, (i + 1) * this.recordBytes));
      at += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** 32 raw bytes of a 64-hex-digit id (the key of the engine's tables). */
export const hexKey = (hex: string): Buffer => Buffer.from(hex, 'hex');

/**
 * Reads a text file line by line (without the `\n`), in bounded memory: a line longer than `maxLine`
 * characters throws `LineTooLong` (a hostile file cannot make one line fill memory). A last line
 * without `\n` is yielded too; `opts.complete` makes it an error instead.
 */
export async function* readLines(
  path: string,
  opts: { maxLine?: number; encoding?: 'utf8' | 'latin1'; readBytes?: number } = {},
): AsyncGenerator<string> {
  const max = opts.maxLine ?? 64 * 1024 * 1024;
  const stream = createReadStream(path, {
    encoding: opts.encoding ?? 'utf8',
    highWaterMark: opts.readBytes ?? 256 * 1024,
  });
  let rest = '';
  for await (const piece of stream as AsyncIterable<string>) {
    let start = 0;
    const text = rest + piece;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      if (nl - start > max) throw new LineTooLong(`${path}: a line longer than ${max} characters`);
      yield text.slice(start, nl);
      start = nl + 1;
    }
    rest = text.slice(start);
    if (rest.length > max) throw new LineTooLong(`${path}: a line longer than ${max} characters`);
  }
  if (rest !== '') yield rest;
}

export class LineTooLong extends Error {}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Sorts text lines (code-unit order: byte order for ASCII) in bounded memory: runs of about `runBytes`
 * are sorted in memory and spilled to files in a temp dir under `tmpDir`, then merged. With `unique`,
 * equal lines come out once. `add` lines, then iterate `sorted()` once; the temp files are removed when
 * it ends (or `dispose`).
 */
export class LineSorter {
  private readonly runs: string[] = [];
  private buf: string[] = [];
  private bytes = 0;
  private dir: string | undefined;

  constructor(private readonly opts: { tmpDir: string; runBytes?: number; unique?: boolean }) {}

  async add(line: string): Promise<void> {
    if (line.includes('\n')) throw new Error('LineSorter: a line with a newline');
    this.buf.push(line);
    this.bytes += line.length + 48;
    if (this.bytes >= (this.opts.runBytes ?? 8 * 1024 * 1024)) await this.spill();
  }

  private async spill(): Promise<void> {
    this.buf.sort(cmp);
    this.dir ??= await mkdtemp(join(this.opts.tmpDir, 'sort-'));
    const path = join(this.dir, `run-${this.runs.length}`);
    const sink = await FileSink.create(path);
    try {
      for (const l of this.buf) await sink.write(`${l}\n`);
      await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    this.runs.push(path);
    this.buf = [];
    this.bytes = 0;
  }

  async *sorted(): AsyncGenerator<string> {
    try {
      let last: string | undefined;
      const unique = this.opts.unique === true;
      if (this.runs.length === 0) {
        const buf = this.buf.sort(cmp);
        this.buf = [];
        for (const l of buf) {
          if (unique && l === last) continue;
          last = l;
          yield l;
        }
        return;
      }
      if (this.buf.length > 0) await this.spill();
      // 64 KiB reads per run: a sort of a million lines merges ~20 runs at once
      const heads = this.runs.map((p) => readLines(p, { readBytes: 64 * 1024 })[Symbol.asyncIterator]());
      const cur: Array<string | undefined> = [];
      for (const h of heads) {
        const r = await h.next();
        cur.push(r.done === true ? undefined : r.value);
      }
      for (;;) {
        let min = -1;
        for (let i = 0; i < cur.length; i++) {
          const c = cur[i];
          if (c !== undefined && (min < 0 || c < (cur[min] as string))) min = i;
        }
        if (min < 0) break;
        const l = cur[min] as string;
        if (!unique || l !== last) yield l;
        last = l;
        const r = await (heads[min] as AsyncIterator<string>).next();
        cur[min] = r.done === true ? undefined : r.value;
      }
      await Promise.all(heads.map((h) => h.return?.(undefined)));
    } finally {
      await this.dispose();
    }
  }

  async dispose(): Promise<void> {
    this.buf = [];
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** `LineSorter` over an iterable. */
export async function* sortLines(
  lines: AsyncIterable<string> | Iterable<string>,
  opts: { tmpDir: string; runBytes?: number; unique?: boolean },
): AsyncGenerator<string> {
  const sorter = new LineSorter(opts);
  try {
    for await (const line of lines) await sorter.add(line);
  } catch (e) {
    await sorter.dispose();
    throw e;
  }
  yield* sorter.sorted();
}
