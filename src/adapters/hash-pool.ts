/**
 * Hashing (and copying while hashing) on worker threads, so that both cores hash while the main
 * thread walks trees and parses manifests. Node's hash API is synchronous: on the main thread it
 * capped verification at one core. Each worker reads with plain synchronous calls into its own
 * buffer; requests travel in batches, so one message round trip covers many small files.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

// The worker's code, evaluated as CommonJS: no file to resolve beside the built or the .ts module.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const buf = Buffer.allocUnsafeSlow(1024 * 1024);
function hashFd(fd, size, out) {
  const h = createHash('sha256');
  let total = 0;
  while (size < 0 || total < size) {
    const want = size < 0 ? buf.length : Math.min(buf.length, size - total);
    const n = fs.readSync(fd, buf, 0, want, null);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    if (out !== undefined) for (let off = 0; off < n; ) off += fs.writeSync(out, buf, off, n - off);
    total += n;
  }
  return { sha256: h.digest('hex'), bytes: total };
}
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
const bytes = (s) => Buffer.from(s, 'latin1');
const sameFile = (k, st) =>
  k.dev === st.dev && k.ino === st.ino && k.size === st.size && k.mtimeNs === st.mtimeNs && k.ctimeNs === st.ctimeNs;
function run(r) {
  // never follows a symlink nor blocks on a FIFO swapped in after the caller's lstat (or readdir)
  const fd = fs.openSync(bytes(r.path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd, { bigint: r.op === 'check' && r.known !== undefined });
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EFTYPE' });
    if (r.op === 'hash') return hashFd(fd, r.size);
    if (r.op === 'check') {
      // the file's own metadata, taken on the descriptor that is read: the caller did no lstat
      const mode = Number(st.mode);
      const size = Number(st.size);
      if (size !== r.size) return { mode, size };
      if (r.known !== undefined && sameFile(r.known, st)) return { mode, size, sha256: r.known.sha256, known: true };
      return { mode, size, ...hashFd(fd, r.size) };
    }
    const out = fs.openSync(bytes(r.to), 'wx', r.mode);
    try {
      return hashFd(fd, r.size, out);
    } finally {
      fs.closeSync(out);
    }
  } finally {
    fs.closeSync(fd);
  }
}
parentPort.on('message', (batch) => {
  parentPort.postMessage(
    batch.map((r) => {
      try {
        return { id: r.id, ...run(r) };
      } catch (e) {
        return { id: r.id, error: { message: String(e && e.message), code: e && e.code } };
      }
    }),
  );
});
`;

/** What makes a file the very file a hash was taken of (see src/sink/early-hash.ts). */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

interface Request {
  id: number;
  /**
   * hash: the file's sha256; copy: also written to `to`; check: the open file's own mode and size
   * (fstat), and its sha256 when the size is `size` (then `known.sha256` instead of a read when
   * the open file is still the `known` one)
   */
  op: 'hash' | 'copy' | 'check';
  /** the path's bytes as a latin1 string: a string crosses to a worker as a copy of itself, where a
   *  Buffer would take its whole backing slab (Node's 8 KiB allocation pool) along */
  path: string;
  /** bytes to read (what lstat said), or -1: until the end */
  size: number;
  to?: string;
  mode?: number;
  known?: FileIdentity & { sha256: string };
}

export interface Reply {
  id: number;
  sha256?: string;
  bytes?: number;
  /** check: the open file's st_mode and size */
  mode?: number;
  size?: number;
  /** check: the sha256 is the known one (the open file is that very file), not read */
  known?: boolean;
  error?: { message: string; code?: string };
}

/** A worker's answer, or the error that took the worker down. */
export type Done = (reply: Reply) => void;

/** Files per message: enough to amortise a round trip, few enough to keep every worker busy. */
const BATCH_FILES = 64;
const BATCH_BYTES = 4 * 1024 * 1024;
/** Messages a worker holds at once: one it works on and one waiting, so it never idles for a round trip. */
const WORKER_BATCHES = 2;

/**
 * Requests wait in one queue and go to a worker when it has room (fewer than WORKER_BATCHES
 * batches): a worker that finishes early takes the next batch, so one large file never holds
 * small ones hostage behind it while the other worker idles.
 */
class HashPool {
  private readonly workers: Array<{ worker: Worker; batches: number; requests: number }> = [];
  private readonly pending = new Map<number, Done>();
  private queue: Request[] = [];
  private queueHead = 0;
  private dispatchScheduled = false;
  private nextId = 1;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      // small heaps: a worker holds one 1 MiB buffer and a batch of paths, never more
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      });
      const slot = { worker, batches: 0, requests: 0 };
      worker.on('message', (replies: Reply[]) => {
        slot.batches--;
        slot.requests -= replies.length;
        for (const r of replies) this.settle(r);
        this.dispatch();
        if (slot.batches === 0) worker.unref();
      });
      worker.on('error', (e: Error) => {
        // a worker that died takes its requests with it: fail them, never hang
        const error = { message: e.message };
        for (const [id, done] of this.pending) {
          this.pending.delete(id);
          done({ id, error });
        }
        this.queue = [];
        this.queueHead = 0;
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  run(req: Omit<Request, 'id'>): Promise<{ sha256: string; bytes: number }> {
    return new Promise((resolve, reject) =>
      this.submit(req, (r) => {
        if (r.error || r.sha256 === undefined) reject(replyError(r));
        else resolve({ sha256: r.sha256, bytes: r.bytes ?? 0 });
      }),
    );
  }

  /** Queues `req`; `done` is called with the worker's reply (no promise per request). */
  submit(req: Omit<Request, 'id'>, done: Done): void {
    const id = this.nextId++;
    this.pending.set(id, done);
    (req as Request).id = id;
    this.queue.push(req as Request);
    // requests made in one turn of the event loop travel together
    if (!this.dispatchScheduled) {
      this.dispatchScheduled = true;
      setImmediate(() => {
        this.dispatchScheduled = false;
        this.dispatch();
      });
    }
  }

  /** Hands queued requests to workers with room, in batches. */
  private dispatch(): void {
    while (this.queueHead < this.queue.length) {
      let slot: (typeof this.workers)[number] | undefined;
      for (const w of this.workers)
        if (w.batches < WORKER_BATCHES && (slot === undefined || w.requests < slot.requests)) slot = w;
      if (slot === undefined) return;
      // a worker still busy with a batch gets only a full one: a few files per message cost the
      // main thread a message each (the structured clone), more than reading them; the rest wait
      // for the next worker whose batch comes back
      if (slot.batches > 0 && this.queue.length - this.queueHead < BATCH_FILES) return;
      // what is queued is shared among the workers with room (a caller with 32 files in flight
      // keeps both workers busy, not one with a batch of 32 while the other idles)
      const free = this.workers.filter((w) => w.batches === 0).length || 1;
      const files = Math.min(BATCH_FILES, Math.ceil((this.queue.length - this.queueHead) / free));
      const batch: Request[] = [];
      let bytes = 0;
      while (this.queueHead < this.queue.length && batch.length < files && bytes < BATCH_BYTES) {
        const r = this.queue[this.queueHead++] as Request;
        batch.push(r);
        bytes += Math.max(0, r.size);
      }
      if (this.queueHead === this.queue.length || this.queueHead >= 4096) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      if (slot.batches === 0) slot.worker.ref();
      slot.batches++;
      slot.requests += batch.length;
      slot.worker.postMessage(batch);
    }
  }

  private settle(r: Reply): void {
    const done = this.pending.get(r.id);
    if (!done) return;
    this.pending.delete(r.id);
    done(r);
  }
}

/** A failed reply as the error it reports (with its errno code). */
export function replyError(r: Reply): Error {
  const e = new Error(r.error?.message ?? 'hashing failed') as NodeJS.ErrnoException;
  if (r.error?.code !== undefined) e.code = r.error.code;
  return e;
}

let shared: HashPool | undefined;

/** The process's pool: two to four workers (created on first use, never keeping the process alive). */
export function hashPool(): { run: HashPool['run']; submit: HashPool['submit'] } {
  const pool = (shared ??= new HashPool(Math.max(2, Math.min(4, availableParallelism()))));
  return { run: (req) => pool.run(req), submit: (req, done) => pool.submit(req, done) };
}
