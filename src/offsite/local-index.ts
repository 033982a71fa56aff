import { createHash } from 'node:crypto';
import { appendFile, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirp, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import type { OffsiteConfig } from '../config/schema.js';
import { errnoCode } from '../errors.js';
import { INDEX_PREFIX, indexKey, packIdOfKey } from './layout.js';
import type { ObjectStore } from './object-store.js';
import { DamagedObjectError, readPackIndexObject } from './read.js';
import type { Repo } from './repo.js';

/** The sink's state for one repository (bucket + prefix): `<stateDir>/offsite/<hash>/`. */
export function offsiteStateDir(stateDir: string, cfg: OffsiteConfig): string {
  const who = `${cfg.endpoint ?? 'aws'}\n${cfg.bucket}\n${cfg.prefix}`;
  return join(stateDir, 'offsite', createHash('sha256').update(who).digest('hex').slice(0, 16));
}

/**
 * Which blob ids the bucket holds and in which pack, kept in the sink state dir so a push needs no
 * HEAD per blob. One line per pack: `<packId> <retainUntilMs> <blobId>,<blobId>…`, appended after
 * the pack and its index are stored (a killed push loses at most the line of a pack it uploaded;
 * `refresh` finds that pack in `index/`). Rebuilt from the bucket's `index/` objects when lost or
 * stale (a pack listed there and not here, or here and not there).
 */
export class LocalIndex {
  readonly blobs = new Map<string, string>();
  readonly packs = new Map<string, { retainUntil: number; blobs: number }>();
  private constructor(private readonly file: string) {}

  static async load(dir: string): Promise<LocalIndex> {
    const idx = new LocalIndex(join(dir, 'blobs.idx'));
    const text = await readFile(idx.file, 'utf8').catch((e: unknown) => {
      if (errnoCode(e) === 'ENOENT') return '';
      throw e;
    });
    for (const line of text.split('\n')) {
      const m = /^([0-9a-f]{64}) ([0-9]{1,15}) ((?:[0-9a-f]{64},?)*)$/.exec(line);
      if (!m?.[1] || !m[2] || m[3] === undefined) continue; // a torn last line of a killed run
      const ids = m[3] === '' ? [] : m[3].split(',').filter((x) => x !== '');
      idx.addPack(m[1], Number(m[2]), ids);
    }
    return idx;
  }

  private addPack(packId: string, retainUntil: number, ids: readonly string[]): void {
    const prev = this.packs.get(packId);
    this.packs.set(packId, { retainUntil: Math.max(retainUntil, prev?.retainUntil ?? 0), blobs: ids.length });
    for (const id of ids) if (!this.blobs.has(id)) this.blobs.set(id, packId);
  }

  /** Records a stored pack (its index too) durably. */
  async record(packId: string, retainUntil: number, ids: readonly string[]): Promise<void> {
    await mkdirp(join(this.file, '..'), 0o700);
    const fh = await open(this.file, 'a', 0o600);
    try {
      await fh.appendFile(`${packId} ${retainUntil} ${ids.join(',')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.addPack(packId, retainUntil, ids);
  }

  async noteRetention(packId: string, retainUntil: number): Promise<void> {
    const p = this.packs.get(packId);
    if (!p || p.retainUntil >= retainUntil) return;
    p.retainUntil = retainUntil;
    await appendFile(this.file, `${packId} ${retainUntil} \n`, { mode: 0o600 });
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
    for (const id of [...this.packs.keys()])
      if (!listed.has(id)) {
        this.packs.delete(id);
        dropped++;
      }
    if (dropped) for (const [b, p] of [...this.blobs]) if (!this.packs.has(p)) this.blobs.delete(b);
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
    if (dropped) await this.rewrite();
    if (added || dropped)
      log.info(
        { step: 'offsite', added, dropped },
        `local blob index refreshed from the bucket (${added} pack(s) added, ${dropped} dropped)`,
      );
    return { added, dropped };
  }

  private async rewrite(): Promise<void> {
    const byPack = new Map<string, string[]>();
    for (const [b, p] of this.blobs) {
      const l = byPack.get(p) ?? [];
      l.push(b);
      byPack.set(p, l);
    }
    const lines = [...this.packs].map(
      ([p, v]) => `${p} ${v.retainUntil} ${(byPack.get(p) ?? []).join(',')}\n`,
    );
    await writeFileAtomic(this.file, lines.join(''), 0o600);
  }

  static async remove(dir: string): Promise<void> {
    await rm(join(dir, 'blobs.idx'), { force: true });
  }
}
