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
import { CODECS, MAX_ENCODED_GENERATION_OBJECT_BYTES, type ObjectRef } from '../core/offsite-records.js';
import { compress } from './codec.js';
import { sha256Hex } from './crypto.js';
import { GEN_OBJECTS, type GenObject } from './layout.js';

/** Generations a base object serves as a delta base before the next one is stored whole. */
export const MAX_DELTAS = 30;
/** Larger objects are stored whole (the delta works in memory). */
export const MAX_DELTA_OBJECT = MAX_ENCODED_GENERATION_OBJECT_BYTES;
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

export interface EncodedGenObjects {
  /** what to seal and store under each object's key (of the objects given) */
  bodies: Partial<Record<GenObject, Uint8Array>>;
  /** the commit's `objects` (of the objects given) */
  refs: Partial<Record<GenObject, ObjectRef>>;
  /** after the commit is stored: the whole objects become the bases of later generations */
  committed(): Promise<void>;
}

export async function encodeGenObjects(o: {
  state: string;
  source: string;
  stream: StreamName;
  id: string;
  /** the objects to encode; one left out (a large one the push streams whole) keeps its old base */
  plain: Partial<Record<GenObject, Uint8Array>>;
  /** a base is used only when its generation is committed in the bucket */
  isCommitted: (id: string) => boolean;
}): Promise<EncodedGenObjects> {
  const bases = await loadState(o.state, o.source, o.stream);
  const next: BaseState = { ...bases };
  const newCopies: GenObject[] = [];
  const bodies: Partial<Record<GenObject, Uint8Array>> = {};
  const refs: Partial<Record<GenObject, ObjectRef>> = {};
  for (const name of GEN_OBJECTS) {
    const plain = o.plain[name];
    if (plain === undefined) continue;
    const whole = await compress(plain, 9);
    const ref: ObjectRef = { sha256: sha256Hex(plain), size: plain.length };
    const base = bases[name];
    let delta: Uint8Array | undefined;
    let deltaCodec: ObjectRef['codec'];
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
      if (text !== undefined) {
        const d = await compress(Buffer.from(text, 'latin1'), 9);
        if (d.bytes.length <= DELTA_KEEP * whole.bytes.length) {
          delta = d.bytes;
          deltaCodec = d.codec;
        }
      }
    }
    if (delta !== undefined && base !== undefined) {
      bodies[name] = delta;
      refs[name] = {
        ...ref,
        ...(deltaCodec === undefined ? {} : { codec: deltaCodec }),
        delta: {
          base: base.id,
          sha256: base.sha256,
          size: base.size,
          ...(base.codec === undefined ? {} : { codec: base.codec }),
        },
      };
      next[name] = { ...base, deltas: base.deltas + 1 };
    } else {
      bodies[name] = whole.bytes;
      refs[name] = whole.codec === undefined ? ref : { ...ref, codec: whole.codec };
      if (plain.length <= MAX_DELTA_OBJECT) {
        next[name] = { id: o.id, sha256: ref.sha256, size: ref.size, deltas: 0 };
        if (whole.codec !== undefined) next[name].codec = whole.codec;
        newCopies.push(name);
      }
    }
  }
  return {
    bodies,
    refs,
    committed: async () => {
      await mkdirp(dirOf(o.state), 0o700);
      for (const name of newCopies)
        await writeFileAtomic(
          copyFile(o.state, o.source, o.stream, name, o.id),
          gzipSync(o.plain[name] ?? new Uint8Array(0), { level: 1 }),
          0o600,
        );
      await writeFileAtomic(stateFile(o.state, o.source, o.stream), JSON.stringify(next), 0o600);
      for (const name of newCopies) {
        const old = bases[name];
        if (old !== undefined && old.id !== o.id)
          await rm(copyFile(o.state, o.source, o.stream, name, old.id), { force: true });
      }
    },
  };
}
