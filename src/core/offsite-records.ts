/**
 * The records of the offsite repository format (docs/offsite.md describes the bucket layout). Everything
 * read back from a bucket is hostile: each parser bounds the bytes before parsing, parses with zod (never
 * casts), and checks what a schema cannot (offsets inside the pack, sorted and unique ids, sizes that fit
 * the encryption overhead). A refusal is a RecordError with one line: `<what>: <problem>`.
 *
 * Pure: no node:*, zod only.
 */
import { z } from 'zod';
import { isGenerationId } from '../generation/names.js';

/** A record from the bucket was refused. One line; the offsite code wraps it into a JobError. */
export class RecordError extends Error {
  override name = 'RecordError';
}

export const KiB = 1024;
export const MiB = 1024 * KiB;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Source names as in the config (config/schema.ts NAME_PATTERN): safe in an object key. */
const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const hex64 = z.string().regex(SHA256_HEX, { error: 'expected 64 lowercase hex digits' });
const count = z.int().nonnegative();

// ---------------------------------------------------------------------------------------------------------
// chunker parameters (used by offsite/chunker.ts; here so that a repository config can be checked purely)

export interface ChunkerParams {
  /** No cut before this many bytes (a file of at most this size is one chunk). */
  readonly minSize: number;
  /** Target mean; a power of two. */
  readonly avgSize: number;
  /** A chunk is cut here at the latest. */
  readonly maxSize: number;
}

/** Bounds a repository config may ask for (a hostile config must not make us allocate gigabytes). */
export const CHUNKER_LIMITS = Object.freeze({ minSize: 64, maxSize: 64 * MiB });

/** Returns why `p` is not a usable parameter set, or undefined when it is. */
export function chunkerParamsProblem(p: ChunkerParams): string | undefined {
  const { minSize, avgSize, maxSize } = p;
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isSafeInteger(v)) return `chunker ${k} ${String(v)} is not an integer`;
  }
  if (minSize < CHUNKER_LIMITS.minSize)
    return `chunker minSize ${minSize} is below ${CHUNKER_LIMITS.minSize}`;
  if (maxSize > CHUNKER_LIMITS.maxSize)
    return `chunker maxSize ${maxSize} is above ${CHUNKER_LIMITS.maxSize}`;
  if (!(minSize < avgSize && avgSize < maxSize)) {
    return `chunker sizes must satisfy minSize < avgSize < maxSize (got ${minSize} / ${avgSize} / ${maxSize})`;
  }
  if ((avgSize & (avgSize - 1)) !== 0) return `chunker avgSize ${avgSize} is not a power of two`;
  return undefined;
}

const chunkerSchema = z
  .strictObject({ minSize: count, avgSize: count, maxSize: count })
  .superRefine((p, ctx) => {
    const problem = chunkerParamsProblem(p);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

// ---------------------------------------------------------------------------------------------------------
// sizes of blobs

/** The largest plaintext a packed blob may have: one chunk of the largest allowed chunker maxSize. */
export const MAX_BLOB_PLAIN_BYTES = CHUNKER_LIMITS.maxSize;
/** The largest age header a sealed blob may carry (offsite/crypto.ts refuses larger ones too). */
export const MAX_AGE_HEADER_BYTES = 64 * KiB;

/** Bytes age adds to a `plainLength`-byte payload, header not included: 16-byte nonce, 16 per 64 KiB chunk. */
export function agePayloadOverhead(plainLength: number): number {
  return 16 + 16 * Math.max(1, Math.ceil(plainLength / (64 * KiB)));
}

/**
 * How a blob or generation object is compressed before it is sealed: `gzip` (RFC 1952; `gzip -d`).
 * Absent: stored as it is. Only version 2 records carry it.
 */
export const CODECS = ['gzip'] as const;
export type Codec = (typeof CODECS)[number];
/** The smallest gzip member (an empty deflate stream in the 18-byte frame). */
const GZIP_MIN_BYTES = 20;

/** Returns why a packed blob's (length, plainLength) cannot be, or undefined. */
export function blobLengthProblem(
  length: number,
  plainLength: number,
  encrypted: boolean,
  codec?: Codec,
): string | undefined {
  if (plainLength > MAX_BLOB_PLAIN_BYTES)
    return `plainLength ${plainLength} is above ${MAX_BLOB_PLAIN_BYTES}`;
  if (codec !== undefined) {
    // stored compressed only when smaller than the plaintext
    const sealed = (n: number) =>
      encrypted ? n + agePayloadOverhead(n) + 'age-encryption.org/v1\n--- \n'.length : n;
    const max = encrypted
      ? plainLength + agePayloadOverhead(plainLength) + MAX_AGE_HEADER_BYTES
      : plainLength;
    if (length < sealed(GZIP_MIN_BYTES) || length > max)
      return `length ${length} does not fit a ${codec} blob of ${plainLength} bytes`;
    return undefined;
  }
  if (!encrypted)
    return length === plainLength ? undefined : `length ${length} != plainLength ${plainLength}`;
  const min = plainLength + agePayloadOverhead(plainLength) + 'age-encryption.org/v1\n--- \n'.length;
  const max = plainLength + agePayloadOverhead(plainLength) + MAX_AGE_HEADER_BYTES;
  if (length < min || length > max)
    return `length ${length} does not fit an age file of ${plainLength} bytes`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// object keys (relative to the repository prefix)

/** `packs/<first two hex digits>/<packId>` */
export function packKey(packId: string): string {
  return `packs/${packId.slice(0, 2)}/${packId}`;
}
export function indexKey(packId: string): string {
  return `index/${packId}`;
}
export const CONFIG_KEY = 'config';
export const GENERATION_OBJECTS = ['manifest', 'SHA256SUMS', 'meta.json', 'files'] as const;
export type GenerationObject = (typeof GENERATION_OBJECTS)[number];
export type Stream = 'data' | 'logs';

export function generationObjectKey(
  source: string,
  stream: Stream,
  genId: string,
  name: GenerationObject,
): string {
  return `gens/${source}/${stream}/${genId}/${name}`;
}
export function commitKey(source: string, stream: Stream, genId: string): string {
  return `commits/${source}/${stream}/${genId}`;
}

/** Parses `commits/<source>/<stream>/<genId>` from a listing; undefined for anything else. */
export function parseCommitKey(key: string): { source: string; stream: Stream; id: string } | undefined {
  const m = /^commits\/([^/]+)\/(data|logs)\/([^/]+)$/.exec(key);
  if (m === null) return undefined;
  const [, source, stream, id] = m as unknown as [string, string, Stream, string];
  if (!SOURCE_NAME.test(source) || !isGenerationId(id)) return undefined;
  return { source, stream, id };
}

/** Parses `index/<packId>` from a listing; undefined for anything else. */
export function parseIndexKey(key: string): string | undefined {
  const m = /^index\/([0-9a-f]{64})$/.exec(key);
  return m?.[1];
}

/** Parses `packs/<pp>/<packId>` from a listing; undefined for anything else. */
export function parsePackKey(key: string): string | undefined {
  const m = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  const [, pp, id] = m ?? [];
  return pp !== undefined && id?.startsWith(pp) === true ? id : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// JSON records

function decode(bytes: Uint8Array | string, maxBytes: number, what: string): unknown {
  const size = typeof bytes === 'string' ? bytes.length : bytes.length;
  if (size > maxBytes) throw new RecordError(`${what}: ${size} bytes, more than the ${maxBytes} allowed`);
  const text =
    typeof bytes === 'string'
      ? bytes
      : new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RecordError(`${what}: not JSON`);
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.map(String).join('.')}`;
  throw new RecordError(`${what}${at}: ${(issue?.message ?? 'invalid').replace(/\s+/g, ' ')}`);
}

function decodeSafely(bytes: Uint8Array | string, maxBytes: number, what: string): unknown {
  try {
    return decode(bytes, maxBytes, what);
  } catch (err) {
    if (err instanceof RecordError) throw err;
    throw new RecordError(`${what}: not UTF-8 text`);
  }
}

// --- repository config

export const REPO_CONFIG_MAX_BYTES = 64 * KiB;

export const repoConfigSchema = z
  .strictObject({
    version: z.literal(1),
    /** Random, 32 hex digits or more; names the repository in logs and the local index. */
    id: z.string().regex(/^[0-9a-f]{32,64}$/, { error: 'expected 32 to 64 lowercase hex digits' }),
    created: z.iso.datetime().optional(),
    chunker: chunkerSchema,
    encrypted: z.boolean(),
    /** Encrypted repositories: the 32-byte master key as an age file (to the recipients), base64. */
    keys: z
      .string()
      .max(48 * KiB)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, { error: 'expected base64' })
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.encrypted && c.keys === undefined) {
      ctx.addIssue({ code: 'custom', message: 'an encrypted repository needs its keys', path: ['keys'] });
    }
    if (!c.encrypted && c.keys !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'a plain repository has no keys', path: ['keys'] });
    }
  });
export type RepoConfig = z.infer<typeof repoConfigSchema>;

export function parseRepoConfig(bytes: Uint8Array | string, what = 'repository config'): RepoConfig {
  return parseWith(repoConfigSchema, decodeSafely(bytes, REPO_CONFIG_MAX_BYTES, what), what);
}
export function formatRepoConfig(c: RepoConfig): string {
  return `${JSON.stringify(parseWith(repoConfigSchema, c, 'repository config'), null, 2)}\n`;
}

// --- pack index

/**
 * A pack index may list this many blobs at most; both pack writers (offsite/pack.ts, the engine's in
 * offsite/push.ts) flush a pack when it reaches this count. Why a count and not packSize / min chunk
 * size: a chunk of a large file is at least minSize (256 KiB: 128 per 32 MiB pack), but a small file
 * is one blob of any size down to 1 byte, so a 32 MiB pack of small files could hold 33 million
 * blobs. 200,000 entries of at most ~140 bytes of JSON each keep an index under 28 MB (inside
 * PACK_INDEX_MAX_BYTES) and its parsed form around 60 MB, and cost at most one extra pack per 200,000
 * tiny files. (The engine's first schema allowed 1,000,000 entries, which did not fit the 64 MiB bound.)
 */
export const MAX_PACK_BLOBS = 200_000;
/** A pack may be this large at most (target size + one blob, with room). */
export const MAX_PACK_BYTES = 2048 * MiB;
export const PACK_INDEX_MAX_BYTES = 64 * MiB;

const packEntrySchema = z.strictObject({
  id: hex64,
  offset: count,
  length: count,
  plainLength: count,
  /** version 2: how the sealed bytes are compressed (absent: not compressed) */
  codec: z.enum(CODECS).optional(),
});
export type PackIndexEntry = z.infer<typeof packEntrySchema>;

export const packIndexSchema = z.strictObject({
  /** 2: entries may carry a codec (written since compression); 1: none does */
  version: z.union([z.literal(1), z.literal(2)]),
  pack: hex64,
  size: count.max(MAX_PACK_BYTES),
  encrypted: z.boolean(),
  blobs: z.array(packEntrySchema).max(MAX_PACK_BLOBS),
});
export type PackIndex = z.infer<typeof packIndexSchema>;

/** Returns why an index cannot describe its pack, or undefined. Checks what the schema cannot. */
export function packIndexProblem(ix: PackIndex): string | undefined {
  const seen = new Set<string>();
  let end = 0;
  for (const [i, b] of ix.blobs.entries()) {
    const at = `blob ${i} (${b.id.slice(0, 12)})`;
    if (seen.has(b.id)) return `${at}: duplicate id`;
    seen.add(b.id);
    if (b.offset < end) return `${at}: offset ${b.offset} overlaps the previous blob (ends at ${end})`;
    if (b.codec !== undefined && ix.version < 2) return `${at}: a codec in a version ${ix.version} index`;
    if (b.offset + b.length > ix.size) {
      return `${at}: offset ${b.offset} + length ${b.length} is outside the ${ix.size}-byte pack`;
    }
    const problem = blobLengthProblem(b.length, b.plainLength, ix.encrypted, b.codec);
    if (problem !== undefined) return `${at}: ${problem}`;
    end = b.offset + b.length;
  }
  return undefined;
}

/**
 * Parses the index of pack `expect.packId`; `expect.packSize` (from a HEAD or listing) and
 * `expect.encrypted` (from the repository config) must match when given.
 */
export function parsePackIndex(
  bytes: Uint8Array | string,
  expect: { packId: string; packSize?: number; encrypted: boolean },
): PackIndex {
  const what = `index of pack ${expect.packId.slice(0, 12)}`;
  const ix = parseWith(packIndexSchema, decodeSafely(bytes, PACK_INDEX_MAX_BYTES, what), what);
  if (ix.pack !== expect.packId) throw new RecordError(`${what}: it names pack ${ix.pack.slice(0, 12)}`);
  if (expect.packSize !== undefined && ix.size !== expect.packSize) {
    throw new RecordError(`${what}: it says ${ix.size} bytes, the pack has ${expect.packSize}`);
  }
  if (ix.encrypted !== expect.encrypted) {
    throw new RecordError(`${what}: it says ${ix.encrypted ? 'encrypted' : 'plain'}, the repository is not`);
  }
  const problem = packIndexProblem(ix);
  if (problem !== undefined) throw new RecordError(`${what}: ${problem}`);
  return ix;
}
export function formatPackIndex(ix: PackIndex): string {
  const problem = packIndexProblem(ix);
  if (problem !== undefined) throw new Error(`refusing to write a bad pack index: ${problem}`);
  return JSON.stringify(ix);
}

// --- commit

export const MAX_COMMIT_PACKS = 1_000_000;
export const COMMIT_MAX_BYTES = 80 * MiB;
/** A generation object (manifest, SHA256SUMS, meta.json, files map) may be this large (plaintext). */
export const MAX_GENERATION_OBJECT_BYTES = 4096 * MiB;
/**
 * A compressed or delta generation object (and a delta's base) is inflated in memory by its readers, so
 * it is at most this large; a push encodes only smaller ones and stores larger ones whole and plain.
 */
export const MAX_ENCODED_GENERATION_OBJECT_BYTES = 64 * MiB;

const GENERATION_ID = z.string().refine(isGenerationId, { error: 'expected a generation id' });
/** The plaintext an object (or a delta's base) must reconstruct to, and how it is stored. */
const storedRef = {
  sha256: hex64,
  size: count.max(MAX_GENERATION_OBJECT_BYTES),
  /** version 2: the stored object is compressed */
  codec: z.enum(CODECS).optional(),
};
const objectRef = z.strictObject({
  ...storedRef,
  /**
   * version 2: the stored object is a line delta (core/offsite-delta.ts) against the same-named object
   * of generation `base` of this source and stream, which is stored whole: `codec`, `sha256`, `size`
   * describe that base object.
   */
  delta: z.strictObject({ base: GENERATION_ID, ...storedRef }).optional(),
});
export type ObjectRef = z.infer<typeof objectRef>;

export const commitSchema = z
  .strictObject({
    /** 2: objects may be compressed or deltas; 1: every object is stored whole and plain */
    version: z.union([z.literal(1), z.literal(2)]),
    source: z.string().regex(SOURCE_NAME, { error: 'expected a source name' }),
    stream: z.enum(['data', 'logs']),
    id: GENERATION_ID,
    created: z.iso.datetime(),
    objects: z.strictObject({
      manifest: objectRef,
      SHA256SUMS: objectRef,
      'meta.json': objectRef,
      files: objectRef,
    }),
    /** Every pack the generation's files need, sorted, each once. */
    packs: z.array(hex64).max(MAX_COMMIT_PACKS),
  })
  .superRefine((c, ctx) => {
    for (const [name, o] of Object.entries(c.objects)) {
      if (c.version < 2 && (o.codec !== undefined || o.delta !== undefined))
        ctx.addIssue({
          code: 'custom',
          message: 'a codec or delta in a version 1 commit',
          path: ['objects', name],
        });
      const encoded = o.codec !== undefined || o.delta !== undefined;
      if (
        (encoded && o.size > MAX_ENCODED_GENERATION_OBJECT_BYTES) ||
        (o.delta !== undefined && o.delta.size > MAX_ENCODED_GENERATION_OBJECT_BYTES)
      )
        ctx.addIssue({
          code: 'custom',
          message: `a compressed or delta object (or its base) over ${MAX_ENCODED_GENERATION_OBJECT_BYTES} bytes`,
          path: ['objects', name],
        });
      if (o.delta !== undefined && o.delta.base >= c.id)
        ctx.addIssue({
          code: 'custom',
          message: 'a delta base must be an older generation',
          path: ['objects', name],
        });
    }
    for (let i = 1; i < c.packs.length; i++) {
      if ((c.packs[i - 1] ?? '') >= (c.packs[i] ?? '')) {
        ctx.addIssue({ code: 'custom', message: 'packs must be sorted and unique', path: ['packs', i] });
        return;
      }
    }
  });
export type Commit = z.infer<typeof commitSchema>;

/** Parses a commit object; it must name the generation its key names. */
export function parseCommit(
  bytes: Uint8Array | string,
  expect: { source: string; stream: Stream; id: string },
): Commit {
  const what = `commit ${expect.source}/${expect.stream}/${expect.id}`;
  const c = parseWith(commitSchema, decodeSafely(bytes, COMMIT_MAX_BYTES, what), what);
  if (c.source !== expect.source || c.stream !== expect.stream || c.id !== expect.id) {
    throw new RecordError(`${what}: it names ${c.source}/${c.stream}/${c.id}`);
  }
  return c;
}
export function formatCommit(c: Commit): string {
  const sorted = { ...c, packs: [...new Set(c.packs)].sort() };
  return `${JSON.stringify(parseWith(commitSchema, sorted, 'commit'))}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// files map: line-based so that a million files stream through bounded memory
//
//   baton-offsite-files 1
//   <file sha256> <blob id> <blob id> …     at most FILES_MAP_IDS_PER_LINE ids a line; a file with more
//   <file sha256> <blob id> …               continues on the next line(s) with the same sha256
//
// Lines are sorted by file sha256 (continuations adjacent); a file's blobs concatenate to its content. The
// empty file is its sha256 alone.

export const FILES_MAP_HEADER = 'baton-offsite-files 1';
export const FILES_MAP_IDS_PER_LINE = 1024;
export const FILES_MAP_MAX_LINE = 65 * (FILES_MAP_IDS_PER_LINE + 1);
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** The line(s) of one file, each ending in `\n`. */
export function formatFilesMapEntry(fileSha256: string, blobIds: readonly string[]): string {
  if (!SHA256_HEX.test(fileSha256)) throw new Error(`not a sha256: ${fileSha256}`);
  if (blobIds.length === 0) {
    if (fileSha256 !== EMPTY_SHA256) throw new Error(`file ${fileSha256} has no blobs but is not empty`);
    return `${fileSha256}\n`;
  }
  let out = '';
  for (let i = 0; i < blobIds.length; i += FILES_MAP_IDS_PER_LINE) {
    out += `${fileSha256} ${blobIds.slice(i, i + FILES_MAP_IDS_PER_LINE).join(' ')}\n`;
  }
  return out;
}

/** The whole files map text for an in-memory map (sorted here). */
export function formatFilesMap(files: ReadonlyMap<string, readonly string[]>): string {
  const shas = [...files.keys()].sort();
  return `${FILES_MAP_HEADER}\n${shas.map((s) => formatFilesMapEntry(s, files.get(s) ?? [])).join('')}`;
}

export type FilesMapLine = { ok: true; sha256: string; blobIds: string[] } | { ok: false; error: string };

/** Parses one line (without its `\n`) of a files map. */
export function parseFilesMapLine(line: string): FilesMapLine {
  if (line.length > FILES_MAP_MAX_LINE) return { ok: false, error: `line longer than ${FILES_MAP_MAX_LINE}` };
  const f = line.split(' ');
  const [sha, ...ids] = f as [string, ...string[]];
  if (!SHA256_HEX.test(sha)) return { ok: false, error: 'expected a file sha256 first' };
  if (ids.length > FILES_MAP_IDS_PER_LINE)
    return { ok: false, error: `more than ${FILES_MAP_IDS_PER_LINE} ids` };
  for (const id of ids)
    if (!SHA256_HEX.test(id)) return { ok: false, error: 'expected blob ids after the sha256' };
  if (ids.length === 0 && sha !== EMPTY_SHA256) return { ok: false, error: 'a non-empty file without blobs' };
  return { ok: true, sha256: sha, blobIds: ids };
}

/**
 * Checks a files map line by line, in order (feed it lines without `\n`); throws one RecordError naming the
 * line. Holds only the previous line's sha256, so a map of any size streams through it.
 */
export class FilesMapReader {
  private lineNo = 0;
  private prev: string | undefined;
  private prevFull = false;
  private files = 0;

  constructor(
    private readonly what = 'files map',
    private readonly maxFiles = 50_000_000,
  ) {}

  /** Returns the entry of a data line (a continuation returns more ids of the same file), undefined for the header. */
  push(line: string): { sha256: string; blobIds: string[]; continued: boolean } | undefined {
    this.lineNo++;
    if (this.lineNo === 1) {
      if (line !== FILES_MAP_HEADER) throw new RecordError(`${this.what}:1: expected "${FILES_MAP_HEADER}"`);
      return undefined;
    }
    const r = parseFilesMapLine(line);
    if (!r.ok) throw new RecordError(`${this.what}:${this.lineNo}: ${r.error}`);
    const continued = r.sha256 === this.prev;
    if (continued && !this.prevFull) {
      throw new RecordError(`${this.what}:${this.lineNo}: file ${r.sha256.slice(0, 12)} listed twice`);
    }
    if (!continued && this.prev !== undefined && r.sha256 < this.prev) {
      throw new RecordError(`${this.what}:${this.lineNo}: not sorted by file sha256`);
    }
    if (!continued && ++this.files > this.maxFiles) {
      throw new RecordError(`${this.what}:${this.lineNo}: more than ${this.maxFiles} files`);
    }
    this.prev = r.sha256;
    this.prevFull = r.blobIds.length === FILES_MAP_IDS_PER_LINE;
    return { sha256: r.sha256, blobIds: r.blobIds, continued };
  }

  /** Call at the end: a map without its header line is refused. */
  end(): void {
    if (this.lineNo === 0) throw new RecordError(`${this.what}: empty`);
  }
}

/** Parses a whole files map held in memory (`maxBytes` bounds it first). */
export function parseFilesMap(
  text: string,
  opts: { what?: string; maxBytes?: number } = {},
): Map<string, string[]> {
  const what = opts.what ?? 'files map';
  const max = opts.maxBytes ?? 512 * MiB;
  if (text.length > max) throw new RecordError(`${what}: more than ${max} bytes`);
  if (text.length > 0 && !text.endsWith('\n')) throw new RecordError(`${what}: last line is not complete`);
  const reader = new FilesMapReader(what);
  const out = new Map<string, string[]>();
  const lines = text.split('\n');
  lines.pop();
  for (const line of lines) {
    const e = reader.push(line);
    if (e === undefined) continue;
    if (e.continued) out.get(e.sha256)?.push(...e.blobIds);
    else out.set(e.sha256, e.blobIds);
  }
  reader.end();
  return out;
}
