/**
 * Compression of blobs and generation objects before they are sealed (docs/offsite-format.md). The one
 * codec is gzip (RFC 1952, node:zlib; `gzip -d` opens it by hand): restic compresses with zstd, which
 * Node 20 lacks, and gzip level 1 gets most of the gain on text and logs. Incompressible data costs one
 * try on a 4 KiB sample. zlib's async calls run on libuv's thread pool, beside the main thread.
 */
import { promisify } from 'node:util';
import { gunzip, gunzipSync, gzip, gzipSync } from 'node:zlib';
import type { Codec } from '../core/offsite-records.js';
import { DamagedObjectError } from './object-store.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Below this a blob is stored as it is (the gzip frame alone is 18 bytes). */
const MIN_SIZE = 128;
/** A larger blob is sampled first: a sample that does not shrink below KEEP means "store plain". */
const SAMPLE = 4096;
/** A stored blob up to this size is inflated on the main thread. */
const SYNC_INFLATE_MAX = 64 * 1024;
/** Compressed bytes are kept only when at most this fraction of the plain bytes. */
const KEEP = 0.9;

export interface Encoded {
  bytes: Uint8Array;
  codec?: Codec;
}

/** `plain` gzipped at `level` when that saves at least a tenth, else `plain` itself. */
export async function compress(plain: Uint8Array, level = 1): Promise<Encoded> {
  if (plain.length < MIN_SIZE) return { bytes: plain };
  if (plain.length > 2 * SAMPLE && gzipSync(plain.subarray(0, SAMPLE), { level: 1 }).length > KEEP * SAMPLE)
    return { bytes: plain };
  const z = await gzipAsync(plain, { level });
  return z.length <= KEEP * plain.length ? { bytes: z, codec: 'gzip' } : { bytes: plain };
}

/**
 * The plain bytes of `stored` (hostile): at most `maxLength` bytes are inflated, so a gzip bomb costs
 * nothing. A refusal is one DamagedObjectError naming `what`.
 */
export async function decompress(
  stored: Uint8Array,
  codec: Codec | undefined,
  maxLength: number,
  what: string,
): Promise<Uint8Array> {
  if (codec === undefined) return stored;
  const opts = { maxOutputLength: Math.max(1, maxLength) };
  try {
    // a small blob inflates in less time than a round trip through libuv's pool takes
    return stored.length <= SYNC_INFLATE_MAX ? gunzipSync(stored, opts) : await gunzipAsync(stored, opts);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const why =
      code === 'ERR_BUFFER_TOO_LARGE' ? `inflates to more than ${maxLength} bytes` : 'not valid gzip';
    throw new DamagedObjectError(`${what}: ${why} (damaged or tampered)`);
  }
}
