/**
 * How a push stores a generation's own objects (manifest, SHA256SUMS, meta.json, files map): gzipped,
 * and, when an earlier committed generation's object is stored whole, as a line delta against it
 * (core/offsite-delta.ts) when that is less than half the size. A delta's base is always a whole object
 * (chains are one step long), and a base serves at most MAX_DELTAS generations before a whole object
 * is stored again. The sink keeps a gzipped copy of each base plaintext in its state dir
 * (`<state>/gen-base/`), since it cannot read the bucket's copy without an identity; a missing or
 * damaged copy only means the next object is stored whole.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import type { StreamName } from '../config/schema.js';
import { mkdirp, writeFileAtomic } from '../adapters/fsx.js';
import { makeDelta } from '../core/offsite-delta.js';
import { CODECS, type ObjectRef } from '../core/offsite-records.js';
import { compress } from './codec.js';
import { sha256Hex } from './crypto.js';
import { GEN_OBJECTS, type GenObject } from './layout.js';

/** Generations a base object serves as a delta base before the next one is stored whole. */
export const MAX_DELTAS = 30;
/** Larger objects are gzipped as a stream and stored whole (the delta works in memory). */
export const MAX_DELTA_OBJECT = 16 * 1024 * 1024;
/** A delta is kept when its stored size is at most this fraction of the whole object's. */
const DELTA_KEEP = 0.5;

const baseSchema = z.strictObject({
  id: z.string().regex(/^[0-9A-Za-z-]{1,40}$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().nonnegative(),
  codec: z.enum(CODECS).optional(),
  deltas: z.int().nonnegative(),
});
const stateSchema = z.partialRecord(z.enum(GEN_OBJECTS), baseSchema);
type BaseState = z.infer<typeof stateSchema>;
type Base = z.infer<typeof baseSchema>;

const dirOf = (state: string) => join(state, 'gen-base');
const stateFile = (state: string, source: string, stream: StreamName) =>
  join(dirOf(state), `${source}-${stream}.json`);
const copyFile = (state: string, source: string, stream: StreamName, name: GenObject, id: string) =>
  join(dirOf(state), `${source}-${stream}.${name}.${id}.gz`);

async function loadState(state: string, source: string, stream: StreamName): Promise<BaseState> {
  const text = await readFile(stateFile(state, source, stream), 'utf8').catch(() => undefined);
  if (text === undefined) return {};
  try {
    return stateSchema.parse(JSON.parse(text));
  } catch {
    return {};
  }
}

async function basePlain(
  state: string,
  source: string,
  stream: StreamName,
  name: GenObject,
  base: Base,
): Promise<Buffer | undefined> {
  try {
    const plain = gunzipSync(await readFile(copyFile(state, source, stream, name, base.id)), {
      maxOutputLength: Math.max(1, base.size),
    });
    return plain.length === base.size && sha256Hex(plain) === base.sha256 ? plain : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Encodes the objects of one generation: `encode` each object that fits in memory, `streamed` each one
 * stored whole by the streamed path, then `committed()` once its commit is stored.
 */
export class GenObjectEncoder {
  private readonly next: BaseState;
  private readonly newCopies = new Map<GenObject, Uint8Array>();

  private constructor(
    private readonly o: GenObjectContext,
    private readonly bases: BaseState,
  ) {
    this.next = { ...bases };
  }

  static async open(o: GenObjectContext): Promise<GenObjectEncoder> {
    return new GenObjectEncoder(o, await loadState(o.state, o.source, o.stream));
  }

  /** What to seal and store for `name` (gzipped, or a gzipped delta), and its commit entry. */
  async encode(name: GenObject, plain: Uint8Array): Promise<{ body: Uint8Array; ref: ObjectRef }> {
    const o = this.o;
    const whole = await compress(plain, 9);
    const ref: ObjectRef = { sha256: sha256Hex(plain), size: plain.length };
    const base = this.bases[name];
    if (
      base !== undefined &&
      base.id < o.id &&
      base.deltas < MAX_DELTAS &&
      plain.length <= MAX_DELTA_OBJECT &&
      o.isCommitted(base.id)
    ) {
      const from = await basePlain(o.state, o.source, o.stream, name, base);
      const text =
        from === undefined
          ? undefined
          : makeDelta(from.toString('latin1'), Buffer.from(plain).toString('latin1'));
      const d = text === undefined ? undefined : await compress(Buffer.from(text, 'latin1'), 9);
      if (d !== undefined && d.bytes.length <= DELTA_KEEP * whole.bytes.length) {
        this.next[name] = { ...base, deltas: base.deltas + 1 };
        const delta = {
          base: base.id,
          sha256: base.sha256,
          size: base.size,
          ...(base.codec === undefined ? {} : { codec: base.codec }),
        };
        return {
          body: d.bytes,
          ref: { ...ref, ...(d.codec === undefined ? {} : { codec: d.codec }), delta },
        };
      }
    }
    const stored: ObjectRef = whole.codec === undefined ? ref : { ...ref, codec: whole.codec };
    if (plain.length <= MAX_DELTA_OBJECT) {
      this.next[name] = {
        id: o.id,
        sha256: ref.sha256,
        size: ref.size,
        deltas: 0,
        ...(whole.codec ? { codec: whole.codec } : {}),
      };
      this.newCopies.set(name, plain);
    }
    return { body: whole.bytes, ref: stored };
  }

  /** `name` was stored whole by the streamed path (too large to encode in memory): no base from now on. */
  streamed(name: GenObject): void {
    this.next[name] = undefined;
  }

  /** After the commit is stored: the whole objects become the bases of later generations. */
  async committed(): Promise<void> {
    const o = this.o;
    await mkdirp(dirOf(o.state), 0o700);
    for (const [name, plain] of this.newCopies)
      await writeFileAtomic(
        copyFile(o.state, o.source, o.stream, name, o.id),
        gzipSync(plain, { level: 1 }),
        0o600,
      );
    const next = Object.fromEntries(Object.entries(this.next).filter(([, b]) => b !== undefined));
    await writeFileAtomic(stateFile(o.state, o.source, o.stream), JSON.stringify(next), 0o600);
    for (const name of GEN_OBJECTS) {
      const old = this.bases[name];
      if (old !== undefined && old.id !== o.id && this.next[name]?.id !== old.id)
        await rm(copyFile(o.state, o.source, o.stream, name, old.id), { force: true });
    }
  }
}

export interface GenObjectContext {
  state: string;
  source: string;
  stream: StreamName;
  id: string;
  /** a base is used only when its generation is committed in the bucket */
  isCommitted: (id: string) => boolean;
}
