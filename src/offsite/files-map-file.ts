/**
 * A generation's files map (docs/offsite-format.md: `baton-offsite-files 1`, then `<sha256> <blob id> …`
 * sorted by sha256) kept as a file with a sorted lookup beside it, never as a JS Map: the push writes
 * one while it streams (FilesMapWriter) and keeps the last one per stream as its cache; the restore
 * downloads one and looks files up in it (FilesMapFile).
 *
 * The lookup `<text>.tbl` (sorted-table.ts) holds 40-byte records: the file's sha256 (32 bytes), the
 * offset of its first line in the text (8 bytes); it is tagged with the text's size and rebuilt from
 * the text when missing or stale. A lookup reads the line(s) at that offset and checks they name the
 * sha256 asked for, so a stale table can only miss, never answer wrongly.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import {
  FILES_MAP_HEADER,
  FILES_MAP_MAX_LINE,
  FilesMapReader,
  formatFilesMapEntry,
  parseFilesMapLine,
  RecordError,
} from '../core/offsite-records.js';
import { FileSink, hexKey, LineTooLong, readLines, SortedTable, TableWriter } from './sorted-table.js';

const RECORD = 40;
const KEY = 32;

/** Writes a files map (entries in sha256 order; a repeated sha256 is skipped) and its lookup table. */
export class FilesMapWriter {
  private readonly hash = createHash('sha256');
  private last = '';
  files = 0;
  private constructor(
    private readonly text: FileSink,
    private readonly table: TableWriter,
    private readonly paths: { text: string; table: string },
  ) {}

  /** Writes to `<text>.new` and `<text>.tbl.new`; `commit` renames them into place. */
  static async create(text: string): Promise<FilesMapWriter> {
    const paths = { text: `${text}.new`, table: `${text}.tbl.new` };
    const sink = await FileSink.create(paths.text);
    const table = await TableWriter.create(paths.table, RECORD, KEY, 0n);
    const w = new FilesMapWriter(sink, table, paths);
    await w.write(`${FILES_MAP_HEADER}\n`);
    return w;
  }

  private async write(s: string): Promise<void> {
    const b = Buffer.from(s);
    this.hash.update(b);
    await this.text.write(b);
  }

  /** One file's entry; sha256s must come in ascending order. */
  async add(sha256: string, blobIds: readonly string[]): Promise<void> {
    if (sha256 === this.last) return;
    if (sha256 < this.last) throw new Error('files map entries out of order');
    this.last = sha256;
    const rec = Buffer.alloc(RECORD);
    rec.write(sha256, 0, 32, 'hex');
    rec.writeBigUInt64BE(BigInt(this.text.size), 32);
    await this.table.add(rec);
    await this.write(formatFilesMapEntry(sha256, blobIds));
    this.files++;
  }

  /** Closes both files; the plaintext's sha256 and size (for the commit). */
  async close(): Promise<{ sha256: string; size: number; path: string }> {
    await this.text.close({ sync: true });
    await this.table.close(BigInt(this.text.size));
    return { sha256: this.hash.digest('hex'), size: this.text.size, path: this.paths.text };
  }

  async abort(): Promise<void> {
    await this.text.abort();
    await this.table.abort();
    await rm(this.paths.text, { force: true });
    await rm(this.paths.table, { force: true });
  }

  /** Renames the written files to `<text>` and `<text>.tbl` (text first: a crash between leaves a stale tag). */
  static async commit(text: string): Promise<void> {
    await rename(`${text}.new`, text);
    await rename(`${text}.tbl.new`, `${text}.tbl`);
  }
}

/** A files map on disk, looked up by sha256. */
export class FilesMapFile {
  private readonly buf = Buffer.allocUnsafe(64 * 1024);
  private constructor(
    private readonly fd: number,
    private readonly table: SortedTable,
    readonly files: number,
  ) {}

  /**
   * Opens `text` with its table, building the table (a streamed pass that checks the whole map) when it
   * is missing or stale. Throws a RecordError (naming `what`) when the text is not a valid files map.
   */
  static async open(text: string, what: string): Promise<FilesMapFile> {
    const size = statSync(text).size;
    const tableFile = `${text}.tbl`;
    let table = SortedTable.open(tableFile, RECORD, KEY, BigInt(size));
    if (table === undefined) {
      await buildTable(text, tableFile, size, what);
      table = SortedTable.open(tableFile, RECORD, KEY, BigInt(size));
      if (table === undefined) throw new Error(`${tableFile}: unreadable right after it was written`);
    }
    return new FilesMapFile(openSync(text, 'r'), table, table.count);
  }

  /** The blob ids of the file with this content, or undefined when the map does not list it. */
  get(sha256: string): string[] | undefined {
    const v = this.table.get(hexKey(sha256));
    if (v === undefined) return undefined;
    let pos = Number(v.readBigUInt64BE(0));
    const ids: string[] = [];
    let pending = '';
    for (;;) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, pos);
      if (n === 0) return ids.length === 0 && pending === '' ? undefined : ids;
      pos += n;
      const text = pending + this.buf.toString('latin1', 0, n);
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) break;
        const line = text.slice(start, nl);
        start = nl + 1;
        if (!line.startsWith(sha256)) return ids.length === 0 ? undefined : ids;
        const r = parseFilesMapLine(line);
        if (!r.ok) return undefined;
        ids.push(...r.blobIds);
        if (r.blobIds.length < 1024) return ids;
      }
      pending = text.slice(start);
      if (pending.length > FILES_MAP_MAX_LINE) return undefined;
    }
  }

  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.table.close();
    closeSync(this.fd);
  }
}

/** The lookup table of a files map text, from one checked pass over it. */
async function buildTable(text: string, tableFile: string, size: number, what: string): Promise<void> {
  const tmp = `${tableFile}.new`;
  const w = await TableWriter.create(tmp, RECORD, KEY, BigInt(size));
  try {
    const reader = new FilesMapReader(what);
    const rec = Buffer.alloc(RECORD);
    let offset = 0;
    let complete = true;
    try {
      for await (const line of readLines(text, { maxLine: FILES_MAP_MAX_LINE, encoding: 'latin1' })) {
        const e = reader.push(line);
        if (e !== undefined && !e.continued) {
          rec.write(e.sha256, 0, 32, 'hex');
          rec.writeBigUInt64BE(BigInt(offset), 32);
          await w.add(rec);
        }
        offset += line.length + 1;
      }
      complete = offset === size;
    } catch (e) {
      if (e instanceof LineTooLong)
        throw new RecordError(`${what}: a line longer than ${FILES_MAP_MAX_LINE}`);
      throw e;
    }
    reader.end();
    if (!complete) throw new RecordError(`${what}: last line is not complete`);
    await w.close();
  } catch (e) {
    await w.abort();
    await rm(tmp, { force: true });
    throw e;
  }
  await rename(tmp, tableFile);
}
