/**
 * The one small interface the offsite tier stores objects through (restic's backend idea): the S3
 * implementation (s3-store.ts) and an in-memory one for unit tests implement it. Keys are relative to
 * the store's prefix. Every failure a caller may meet is one of the three classes below, each with a
 * one-line message that names the store and never a credential.
 */
import { JobError } from '../errors.js';

export interface PutOptions {
  /** Write only when no object has the key (`If-None-Match: *`); a clash throws ObjectExistsError. */
  ifNoneMatch?: boolean;
  /** Object Lock retain-until; the store's configured default (now + retain) when omitted. */
  retainUntil?: Date;
  signal?: AbortSignal;
}

export interface ObjectInfo {
  /** Relative to the store's prefix, as passed to put. */
  key: string;
  size: number;
  lastModified: Date;
}

export interface GetOptions {
  /** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
  range?: { start: number; end: number };
  /** Refuse (OffsiteError) an object or range larger than this: reads are always bounded. */
  maxBytes: number;
}

export interface ObjectStore {
  /** "s3://bucket/prefix at endpoint" — never credentials. */
  readonly describe: string;
  /** Throws ObjectExistsError on an If-None-Match clash. */
  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<void>;
  /** Uploads `size` bytes of the file at `path` (multipart when large; the file must not change meanwhile). */
  putFile(key: string, path: string, size: number, opts?: PutOptions): Promise<void>;
  /** Bounded read; throws ObjectMissingError when the key does not exist. */
  get(key: string, opts?: GetOptions): Promise<Uint8Array>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix` (relative), in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** 'retained' when Object Lock refuses the delete of any version of the key (all versions considered). */
  delete(key: string): Promise<'deleted' | 'retained'>;
  /** Sets retain-until to `until` when the object's is sooner; never shortens. No-op without Object Lock. */
  extendRetention(key: string, until: Date): Promise<void>;
}

/** Any expected failure of the object store: one line, exit 1. */
export class OffsiteError extends JobError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, step: 'offsite' });
  }
}

/** An object of the bucket is there but not what it claims (damaged, tampered or foreign). */
export class DamagedObjectError extends OffsiteError {}

/** A conditional put (If-None-Match: *) found the key already written. */
export class ObjectExistsError extends OffsiteError {
  readonly key: string;
  constructor(key: string, where: string, opts: { cause?: unknown } = {}) {
    super(`object ${key} already exists in ${where}`, opts);
    this.key = key;
  }
}

/** The key does not exist (GET of a missing object). */
export class ObjectMissingError extends OffsiteError {
  readonly key: string;
  constructor(key: string, where: string, opts: { cause?: unknown } = {}) {
    super(`object ${key} is missing from ${where}`, opts);
    this.key = key;
  }
}
