/**
 * An in-memory ObjectStore for unit tests of code above the store (push plans, prune, verify): the
 * same semantics as the S3 store — conditional puts, bounded reads, Object Lock retention that a
 * delete respects and extendRetention never shortens — without a server. `now` is injectable so
 * retention expiry needs no sleeping.
 */
import { readFile } from 'node:fs/promises';
import {
  ObjectExistsError,
  ObjectMissingError,
  OffsiteError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from './object-store.js';

interface Entry {
  body: Uint8Array;
  lastModified: Date;
  retainUntil: Date | undefined;
}

export class MemoryStore implements ObjectStore {
  readonly describe: string;
  readonly objects = new Map<string, Entry>();
  private readonly retainMs: number | undefined;
  private readonly now: () => number;

  constructor(opts: { name?: string; retainMs?: number; now?: () => number } = {}) {
    this.describe = `memory://${opts.name ?? 'store'}`;
    this.retainMs = opts.retainMs;
    this.now = opts.now ?? Date.now;
  }

  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<void> {
    checkKey(key);
    if (opts?.ifNoneMatch === true && this.objects.has(key)) {
      return Promise.reject(new ObjectExistsError(key, this.describe));
    }
    const retainUntil =
      this.retainMs === undefined ? undefined : (opts?.retainUntil ?? new Date(this.now() + this.retainMs));
    const old = this.objects.get(key)?.retainUntil;
    this.objects.set(key, {
      body: Uint8Array.from(body),
      lastModified: new Date(this.now()),
      // An overwrite adds a version on S3; the older version's lock still holds the key.
      retainUntil: old !== undefined && (retainUntil === undefined || old > retainUntil) ? old : retainUntil,
    });
    return Promise.resolve();
  }

  async putFile(key: string, path: string, size: number, opts?: PutOptions): Promise<void> {
    const body = await readFile(path);
    if (body.length !== size)
      throw new OffsiteError(`PUT ${key}: ${path} has ${body.length} bytes, expected ${size}`);
    await this.put(key, body, opts);
  }

  get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    checkKey(key);
    const e = this.objects.get(key);
    if (e === undefined) return Promise.reject(new ObjectMissingError(key, this.describe));
    const maxBytes = opts?.maxBytes ?? 64 * 1024 * 1024;
    const r = opts?.range;
    if (r !== undefined && (r.start < 0 || r.end < r.start)) {
      return Promise.reject(new OffsiteError(`GET ${key}: bad range ${r.start}-${r.end}`));
    }
    const out = r === undefined ? e.body : e.body.subarray(r.start, r.end + 1);
    if (out.byteLength > maxBytes) {
      return Promise.reject(
        new OffsiteError(`GET ${key} from ${this.describe}: ${out.byteLength} bytes exceed ${maxBytes}`),
      );
    }
    return Promise.resolve(Uint8Array.from(out));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    checkKey(key);
    const e = this.objects.get(key);
    return Promise.resolve(
      e === undefined ? undefined : { key, size: e.body.byteLength, lastModified: e.lastModified },
    );
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const e = this.objects.get(key);
      if (e !== undefined) yield { key, size: e.body.byteLength, lastModified: e.lastModified };
      await Promise.resolve();
    }
  }

  delete(key: string): Promise<'deleted' | 'retained'> {
    checkKey(key);
    const e = this.objects.get(key);
    if (e?.retainUntil !== undefined && e.retainUntil.getTime() > this.now())
      return Promise.resolve('retained');
    this.objects.delete(key);
    return Promise.resolve('deleted');
  }

  extendRetention(key: string, until: Date): Promise<void> {
    if (this.retainMs === undefined) return Promise.resolve();
    const e = this.objects.get(key);
    if (e === undefined) return Promise.reject(new ObjectMissingError(key, this.describe));
    if (e.retainUntil === undefined || e.retainUntil < until) e.retainUntil = until;
    return Promise.resolve();
  }
}

function checkKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new OffsiteError(`bad object key ${JSON.stringify(key)}`);
  }
}
