import { JobError } from '../errors.js';

/**
 * PROVISIONAL copy of the interface in the issue-13 plan (owned by the `s3` helper); replaced by
 * theirs on merge.
 */
export interface PutOptions {
  ifNoneMatch?: boolean;
  retainUntil?: Date;
  signal?: AbortSignal;
}
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}
export interface ObjectStore {
  readonly describe: string;
  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<void>;
  putFile(key: string, path: string, size: number, opts?: PutOptions): Promise<void>;
  get(key: string, opts?: { range?: { start: number; end: number }; maxBytes: number }): Promise<Uint8Array>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<'deleted' | 'retained'>;
  extendRetention(key: string, until: Date): Promise<void>;
}

export class OffsiteError extends JobError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, step: 'offsite' });
  }
}
export class ObjectExistsError extends OffsiteError {}
export class ObjectMissingError extends OffsiteError {}
