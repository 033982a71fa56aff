/**
 * Packs: many blobs concatenated into one object of about `targetSize` bytes, each blob its own age file
 * (encrypted repositories) or its plain bytes, described by an index object (`index/<packId>`, sealed like a
 * blob when encrypted). packId = sha256 hex of the pack bytes.
 *
 * `PackWriter` holds one pack buffer at a time (plus the sealed copy of the blob being added) and hands each
 * full pack to an async callback; `openPackedBlob` extracts and verifies one blob from a ranged read.
 */
import { createHash } from 'node:crypto';
import {
  formatPackIndex,
  MAX_PACK_BLOBS,
  parsePackIndex,
  RecordError,
  type PackIndex,
  type PackIndexEntry,
} from '../core/offsite-records.js';
import { JobError } from '../errors.js';
import { BlobSealer, blobIdFromSha256, sha256Hex, type BlobOpener, type Recipients } from './crypto.js';

const STEP = 'offsite';
const ID = /^[0-9a-f]{64}$/;

/** Default pack target: 32 MiB. */
export const DEFAULT_PACK_SIZE = 32 * 1024 * 1024;

/**
 * Receives a finished pack. `packBytes` and `indexBytes` are the caller's to keep; `index` is the parsed
 * form of `indexBytes` (where each blob went, for the local index).
 */
export type PackFlush = (
  packId: string,
  packBytes: Uint8Array,
  indexBytes: Uint8Array,
  index: PackIndex,
) => Promise<void>;

export interface PackWriterOptions {
  /** A pack is flushed before a blob would take it past this size (a larger blob is a pack of its own). */
  readonly targetSize: number;
  /** Age recipients; undefined for a plain repository. */
  readonly recipients: Recipients | undefined;
  /**
   * Who can open the index objects (encrypted repositories); default: `recipients`. The engine adds a
   * recipient derived from the master key so that the sink can rebuild its blob index without an identity.
   */
  readonly indexRecipients?: Recipients;
  readonly onFlush: PackFlush;
  /** At most this many blobs a pack (default and ceiling: the readers' MAX_PACK_BLOBS). */
  readonly maxBlobs?: number;
}

export interface PackWriterStats {
  packs: number;
  blobs: number;
  /** Plaintext bytes added. */
  plainBytes: number;
  /** Pack bytes flushed. */
  packBytes: number;
  /** add() calls skipped because the id was already added to this writer. */
  duplicates: number;
}

export class PackWriter {
  private buf: Buffer | undefined;
  private used = 0;
  private entries: PackIndexEntry[] = [];
  private sealer: BlobSealer | undefined;
  /** Ids added to this writer, as 32-byte binary strings (half the memory of hex). */
  private readonly added = new Set<string>();
  private busy = false;
  private failed: unknown;
  readonly stats: PackWriterStats = { packs: 0, blobs: 0, plainBytes: 0, packBytes: 0, duplicates: 0 };

  constructor(private readonly opts: PackWriterOptions) {
    if (!Number.isSafeInteger(opts.targetSize) || opts.targetSize < 1) throw new Error('bad pack targetSize');
    if (opts.maxBlobs !== undefined && (opts.maxBlobs < 1 || opts.maxBlobs > MAX_PACK_BLOBS)) {
      throw new Error('bad pack maxBlobs');
    }
  }

  get encrypted(): boolean {
    return this.opts.recipients !== undefined;
  }

  /** True when `id` was added to this writer (flushed or pending). */
  has(id: string): boolean {
    return this.added.has(binaryId(id));
  }

  /** Bytes in the pack not yet flushed. */
  get pendingBytes(): number {
    return this.used;
  }

  /**
   * Seals `plain` and appends it under `id` (the caller computed it: crypto.blobId), flushing the current
   * pack first when the blob would take it past the target. Returns false, doing nothing, for an id this
   * writer already has. Not reentrant: await each call.
   */
  async add(id: string, plain: Uint8Array): Promise<boolean> {
    return this.exclusive(async () => {
      const key = binaryId(id);
      if (this.added.has(key)) {
        this.stats.duplicates++;
        return false;
      }
      if (this.entries.length >= (this.opts.maxBlobs ?? MAX_PACK_BLOBS)) await this.flushPack();
      let sealed = await this.sealed(plain);
      // Not `used > 0`: a pack holding only empty plain blobs has used 0 and a buffer of targetSize.
      if (this.entries.length > 0 && this.used + sealed.length > this.opts.targetSize) {
        await this.flushPack();
        sealed = await this.sealed(plain); // a new pack has a new sealer
      }
      if (this.buf === undefined)
        this.buf = Buffer.allocUnsafe(Math.max(this.opts.targetSize, sealed.length));
      this.buf.set(sealed, this.used);
      this.entries.push({ id, offset: this.used, length: sealed.length, plainLength: plain.length });
      this.used += sealed.length;
      this.added.add(key);
      this.stats.blobs++;
      this.stats.plainBytes += plain.length;
      if (this.used >= this.opts.targetSize) await this.flushPack();
      return true;
    });
  }

  /** Flushes the pending pack, if any (call at the end; the commit must come after it). */
  async flush(): Promise<void> {
    await this.exclusive(() => this.flushPack());
  }

  private async sealed(plain: Uint8Array): Promise<Uint8Array> {
    const recipients = this.opts.recipients;
    if (recipients === undefined) return plain;
    // One sealer (one file key, one X25519 per recipient) per pack: blobs of a pack share its header.
    this.sealer ??= await BlobSealer.create(recipients);
    return this.sealer.seal(plain);
  }

  private async flushPack(): Promise<void> {
    if (this.entries.length === 0 || this.buf === undefined) return;
    const packBytes = this.buf.subarray(0, this.used);
    const packId = createHash('sha256').update(packBytes).digest('hex');
    const index: PackIndex = {
      version: 1,
      pack: packId,
      size: packBytes.length,
      encrypted: this.encrypted,
      blobs: this.entries,
    };
    const indexPlain = Buffer.from(formatPackIndex(index));
    let indexBytes: Uint8Array = indexPlain;
    if (this.sealer !== undefined) {
      const ixRecipients = this.opts.indexRecipients;
      const ixSealer = ixRecipients === undefined ? this.sealer : await BlobSealer.create(ixRecipients);
      indexBytes = ixSealer.seal(indexPlain);
    }
    this.buf = undefined;
    this.used = 0;
    this.entries = [];
    this.sealer = undefined;
    await this.opts.onFlush(packId, packBytes, indexBytes, index);
    this.stats.packs++;
    this.stats.packBytes += packBytes.length;
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.failed !== undefined) throw new JobError('pack writer: an earlier pack failed', { step: STEP });
    if (this.busy) throw new Error('PackWriter is not reentrant: await each add()/flush()');
    this.busy = true;
    try {
      return await fn();
    } catch (err) {
      // The blobs of a pack whose flush failed are gone from the writer: refuse to go on as if they were stored.
      this.failed = err;
      throw err;
    } finally {
      this.busy = false;
    }
  }
}

function binaryId(id: string): string {
  if (!ID.test(id)) throw new Error(`not a blob id: ${id.slice(0, 70)}`);
  return Buffer.from(id, 'hex').toString('latin1');
}

// ---------------------------------------------------------------------------------------------------------
// reading

export interface BlobReadContext {
  /** Opens sealed blobs; required for an encrypted repository. */
  readonly opener: BlobOpener | undefined;
  /** The repository idKey; required for an encrypted repository (ids are HMACs under it). */
  readonly idKey: Uint8Array | undefined;
}

/**
 * Opens and verifies one blob given the bytes of its index entry (a ranged GET of
 * [offset, offset + length - 1] of its pack): decrypts it when encrypted, then checks its size and that its
 * id is HMAC(idKey, sha256(plain)) (encrypted) or sha256(plain) (plain). `what` names the blob in the one-line
 * JobError. Returns the plaintext and its sha256.
 */
export async function openPackedBlob(
  slice: Uint8Array,
  entry: PackIndexEntry,
  ctx: BlobReadContext,
  what: string,
): Promise<{ plain: Uint8Array; sha256: string }> {
  if (slice.length !== entry.length) {
    throw new JobError(`${what}: got ${slice.length} bytes, the index says ${entry.length}`, { step: STEP });
  }
  const encrypted = ctx.opener !== undefined;
  if (encrypted !== (ctx.idKey !== undefined))
    throw new Error('openPackedBlob needs both opener and idKey, or neither');
  const plain = ctx.opener === undefined ? slice : await ctx.opener.open(slice, what);
  if (plain.length !== entry.plainLength) {
    throw new JobError(`${what}: ${plain.length} plaintext bytes, the index says ${entry.plainLength}`, {
      step: STEP,
    });
  }
  const sha256 = sha256Hex(plain);
  if (blobIdFromSha256(ctx.idKey, sha256) !== entry.id) {
    throw new JobError(
      `${what}: content does not match its id ${entry.id.slice(0, 12)} (damaged or tampered)`,
      {
        step: STEP,
      },
    );
  }
  return { plain, sha256 };
}

/** The bytes of `entry` within a whole downloaded pack, bounds-checked. */
export function slicePack(pack: Uint8Array, entry: PackIndexEntry, what: string): Uint8Array {
  if (entry.offset + entry.length > pack.length) {
    throw new JobError(`${what}: outside the ${pack.length}-byte pack`, { step: STEP });
  }
  return pack.subarray(entry.offset, entry.offset + entry.length);
}

/**
 * Reads an index object as fetched from the bucket: opens it when the repository is encrypted, then parses
 * and checks it against its pack (see parsePackIndex). Every refusal is one JobError line.
 */
export async function readPackIndex(
  stored: Uint8Array,
  expect: { packId: string; packSize?: number },
  opener: BlobOpener | undefined,
): Promise<PackIndex> {
  const what = `index of pack ${expect.packId.slice(0, 12)}`;
  const plain = opener === undefined ? stored : await opener.open(stored, what);
  try {
    return parsePackIndex(plain, { ...expect, encrypted: opener !== undefined });
  } catch (err) {
    if (err instanceof RecordError) throw new JobError(err.message, { step: STEP });
    throw err;
  }
}
