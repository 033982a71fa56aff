import { createHash } from 'node:crypto';
import { appendFile, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirp } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import type { OffsiteConfig } from '../config/schema.js';
import { errnoCode } from '../errors.js';
import { INDEX_PREFIX, indexKey, packIdOfKey } from './layout.js';
import type { ObjectStore } from './object-store.js';
import { DamagedObjectError, readPackIndexObject } from './read.js';
import type { Repo } from './repo.js';
import { FileSink, hexKey, readLines, sortLines, SortedTable, TableWriter } from './sorted-table.js';

/** The sink's state for one repository (bucket + prefix): `<stateDir>/offsite/<hash>/`. */
export function offsiteStateDir(stateDir: string, cfg: OffsiteConfig): string {
  const who = `${cfg.endpoint ?? 'aws'}\n${cfg.bucket}\n${cfg.prefix}`;
  return join(stateDir, 'offsite', createHash('sha256').update(who).digest('hex').slice(0, 16));
}

const LOG_LINE = /^([0-9a-f]{64}) ([0-9]{1,15}) ((?:[0-9a-f]{64},?)*)$/;
/** blob table record: 32-byte blob id, 4-byte pack ordinal (order of first appearance in the log) */
const RECORD = 36;
const KEY = 32;
/** blob ids recorded since the table was written, kept in memory (as 32-byte latin1 keys, about 80 bytes each) until they are merged into it */
export const OVERLAY_MAX = 50_000;

/**
 * Which blob ids the bucket holds and in which pack, kept in the sink state dir so a push needs no
 * HEAD per blob. Two files:
 *
 * - `blobs.idx`, the log: one line per pack, `<packId> <retainUntilMs> <blobId>,<blobId>…`, appended
 *   (fsynced) after the pack and its index are stored (a killed push loses at most the line of a pack
 *   it uploaded; `refresh` finds that pack in `index/`); a line with no ids raises a pack's retention.
 * - `blobs.tbl`, the lookup: the log's blob ids sorted, 36-byte records (id, pack ordinal), searched
 *   on disk (sorted-table.ts), tagged with the log size it was built from; rebuilt from the log when
 *   missing or stale. Ids recorded since it was written wait in a bounded in-memory overlay.
 *
 * Memory: the pack list and at most OVERLAY_MAX ids, whatever the number of blobs. Rebuilt from the
 * bucket's `index/` objects when lost or stale (a pack listed there and not here, or here and not there).
 */
export class LocalIndex {
  readonly packs = new Map<string, { retainUntil: number; blobs: number; ordinal: number }>();
  private packList: string[] = [];
  private table: SortedTable | undefined;
  private overlay = new Map<string, number>();
  private logSize = 0;

  private constructor(private readonly dir: string) {}

  private get log(): string {
    return join(this.dir, 'blobs.idx');
  }
  private get tableFile(): string {
    return join(this.dir, 'blobs.tbl');
  }

  static async load(dir: string): Promise<LocalIndex> {
    const idx = new LocalIndex(dir);
    await idx.reload();
    return idx;
  }

  /** Reads the log's pack list (streamed), then opens the table or rebuilds it. */
  private async reload(): Promise<void> {
    this.close();
    this.packs.clear();
    this.packList = [];
    this.overlay = new Map();
    this.logSize = 0;
    for await (const line of this.logLines()) {
      this.logSize += Buffer.byteLength(line) + 1;
      const m = LOG_LINE.exec(line);
      if (!m?.[1] || !m[2]) continue; // a torn line of a killed run
      this.notePack(m[1], Number(m[2]), m[3] === '' ? 0 : (m[3]?.split(',').filter(Boolean).length ?? 0));
    }
    this.table = SortedTable.open(this.tableFile, RECORD, KEY, BigInt(this.logSize));
    if (this.table === undefined) await this.rebuildTable();
  }

  private async *logLines(): AsyncGenerator<string> {
    try {
      yield* readLines(this.log);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }

  private notePack(packId: string, retainUntil: number, blobs: number): number {
    const prev = this.packs.get(packId);
    if (prev) {
      prev.retainUntil = Math.max(prev.retainUntil, retainUntil);
      prev.blobs += blobs;
      return prev.ordinal;
    }
    const ordinal = this.packList.length;
    this.packList.push(packId);
    this.packs.set(packId, { retainUntil, blobs, ordinal });
    return ordinal;
  }

  /** The table from the log alone: an external sort of (id, ordinal), the first pack of an id kept. */
  private async rebuildTable(): Promise<void> {
    this.table?.close();
    this.table = undefined;
    const ordinals = new Map<string, number>();
    const logLines = () => this.logLines();
    async function* pairs(): AsyncGenerator<string> {
      for await (const line of logLines()) {
        const m = LOG_LINE.exec(line);
        if (!m?.[1]) continue;
        let o = ordinals.get(m[1]);
        if (o === undefined) ordinals.set(m[1], (o = ordinals.size));
        if (!m[3]) continue;
        const tail = o.toString(16).padStart(8, '0');
        for (const id of m[3].split(',')) if (id !== '') yield `${id} ${tail}`;
      }
    }
    async function* records(): AsyncGenerator<Buffer> {
      for await (const l of sortLines(pairs(), { tmpDir: dir })) {
        const rec = Buffer.allocUnsafe(RECORD);
        rec.write(l.slice(0, 64), 0, KEY, 'hex');
        rec.writeUInt32BE(parseInt(l.slice(65), 16), KEY);
        yield rec;
      }
    }
    const dir = this.dir;
    await this.writeTable(records(), BigInt(this.logSize));
    this.overlay = new Map();
  }

  /** Writes `blobs.tbl` from 36-byte records in key order (first of a key kept), then opens it. */
  private async writeTable(sorted: AsyncIterable<Buffer> | Iterable<Buffer>, tag: bigint): Promise<void> {
    await mkdirp(this.dir, 0o700);
    const tmp = `${this.tableFile}.tmp`;
    const w = await TableWriter.create(tmp, RECORD, KEY, tag);
    try {
      let last: Buffer | undefined;
      for await (const rec of sorted) {
        const key = rec.subarray(0, KEY);
        if (last !== undefined && key.equals(last)) continue;
        await w.add(rec);
        last = Buffer.from(key);
      }
      await w.close();
    } catch (e) {
      await w.abort();
      await rm(tmp, { force: true });
      throw e;
    }
    this.table?.close();
    await rename(tmp, this.tableFile);
    this.table = SortedTable.open(this.tableFile, RECORD, KEY, tag);
    if (this.table === undefined) throw new Error(`${this.tableFile}: unreadable right after it was written`);
  }

  /** The pack holding blob `id`, or undefined when the bucket does not hold it (as far as we know). */
  packOf(id: string): string | undefined {
    const key = hexKey(id);
    let ordinal = this.overlay.get(key.toString('latin1'));
    if (ordinal === undefined) {
      const v = this.table?.get(key);
      if (v === undefined) return undefined;
      ordinal = v.readUInt32BE(0);
    }
    const pack = this.packList[ordinal];
    return pack !== undefined && this.packs.has(pack) ? pack : undefined;
  }

  has(id: string): boolean {
    return this.packOf(id) !== undefined;
  }

  /** Records a stored pack (its index too) durably. */
  async record(packId: string, retainUntil: number, ids: readonly string[]): Promise<void> {
    await mkdirp(this.dir, 0o700);
    const line = `${packId} ${retainUntil} ${ids.join(',')}\n`;
    const fh = await open(this.log, 'a', 0o600);
    try {
      await fh.appendFile(line);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.logSize += Buffer.byteLength(line);
    const ordinal = this.notePack(packId, retainUntil, ids.length);
    for (const id of ids) if (!this.has(id)) this.overlay.set(hexKey(id).toString('latin1'), ordinal);
    if (this.overlay.size >= OVERLAY_MAX) await this.save();
  }

  async noteRetention(packId: string, retainUntil: number): Promise<void> {
    const p = this.packs.get(packId);
    if (!p || p.retainUntil >= retainUntil) return;
    p.retainUntil = retainUntil;
    const line = `${packId} ${retainUntil} \n`;
    await appendFile(this.log, line, { mode: 0o600 });
    this.logSize += Buffer.byteLength(line);
  }

  /** Merges the overlay into the table (tagged with the log's size now), so the next load reuses it. */
  async save(): Promise<void> {
    const tag = BigInt(this.logSize);
    if (this.overlay.size === 0 && this.table?.tag === tag) return;
    const table = this.table;
    // the overlay's keys are the ids' 32 bytes as latin1 strings: their order is the bytes' order
    const added = [...this.overlay.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const overlay = this.overlay;
    function addedRecord(key: string): Buffer {
      const rec = Buffer.allocUnsafe(RECORD);
      rec.write(key, 0, KEY, 'latin1');
      rec.writeUInt32BE(overlay.get(key) ?? 0, KEY);
      return rec;
    }
    function* merged(): Generator<Buffer> {
      let i = 0;
      let next = added[0] === undefined ? undefined : addedRecord(added[0]);
      if (table)
        for (const r of table.records()) {
          while (next !== undefined && Buffer.compare(next.subarray(0, KEY), r.subarray(0, KEY)) < 0) {
            yield next;
            const k = added[++i];
            next = k === undefined ? undefined : addedRecord(k);
          }
          yield r;
        }
      while (next !== undefined) {
        yield next;
        const k = added[++i];
        next = k === undefined ? undefined : addedRecord(k);
      }
    }
    await this.writeTable(merged(), tag);
    this.overlay = new Map();
  }

  close(): void {
    this.table?.close();
    this.table = undefined;
  }

  /**
   * Makes the index agree with the bucket's `index/` listing: packs gone from the bucket are
   * dropped, packs only in the bucket are read from their index objects. Returns what changed.
   */
  async refresh(store: ObjectStore, repo: Repo, log: Logger): Promise<{ added: number; dropped: number }> {
    const listed = new Set<string>();
    for await (const o of store.list(INDEX_PREFIX)) {
      const p = packIdOfKey(o.key);
      if (p?.kind === 'index') listed.add(p.id);
    }
    let dropped = 0;
    for (const id of this.packs.keys()) if (!listed.has(id)) dropped++;
    if (dropped) await this.rewrite(listed);
    const missing = [...listed].filter((id) => !this.packs.has(id));
    let added = 0;
    for (const id of missing) {
      let idx;
      try {
        idx = await readPackIndexObject(store, repo, id);
      } catch (e) {
        // a damaged or foreign index: its blobs are not counted as stored (a store failure still throws)
        if (!(e instanceof DamagedObjectError)) throw e;
        log.warn(
          { step: 'offsite' },
          `${indexKey(id)}: ${e.message}; its blobs are uploaded again when needed`,
        );
        continue;
      }
      await this.record(
        id,
        0,
        idx.blobs.map((b) => b.id),
      );
      added++;
    }
    if (added) await this.save();
    if (added || dropped)
      log.info(
        { step: 'offsite', added, dropped },
        `local blob index refreshed from the bucket (${added} pack(s) added, ${dropped} dropped)`,
      );
    return { added, dropped };
  }

  /** Rewrites the log without the packs not in `keep` (streamed), then rebuilds the table. */
  private async rewrite(keep: ReadonlySet<string>): Promise<void> {
    await this.save();
    const tmp = `${this.log}.tmp`;
    const sink = await FileSink.create(tmp);
    try {
      for await (const line of this.logLines()) {
        const m = LOG_LINE.exec(line);
        if (m?.[1] && keep.has(m[1])) await sink.write(`${line}\n`);
      }
      await sink.close({ sync: true });
    } catch (e) {
      await sink.abort();
      throw e;
    }
    this.close();
    await rm(this.tableFile, { force: true });
    await rename(tmp, this.log);
    await this.reload();
  }

  static async remove(dir: string): Promise<void> {
    await rm(join(dir, 'blobs.idx'), { force: true });
    await rm(join(dir, 'blobs.tbl'), { force: true });
  }
}
