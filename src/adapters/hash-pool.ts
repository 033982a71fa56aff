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
const asBuffer = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
function run(r) {
  const fd = fs.openSync(asBuffer(r.path), 'r');
  try {
    if (r.op === 'hash') return hashFd(fd, r.size);
    const out = fs.openSync(asBuffer(r.to), 'wx', r.mode);
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

interface Request {
  id: number;
  op: 'hash' | 'copy';
  path: Buffer;
  /** bytes to read (what lstat said), or -1: until the end */
  size: number;
  to?: Buffer;
  mode?: number;
}

interface Reply {
  id: number;
  sha256?: string;
  bytes?: number;
  error?: { message: string; code?: string };
}

interface Pending {
  resolve: (r: { sha256: string; bytes: number }) => void;
  reject: (e: Error) => void;
}

/** Files per message: enough to amortise a round trip, few enough to keep every worker busy. */
const BATCH_FILES = 32;
const BATCH_BYTES = 8 * 1024 * 1024;

class HashPool {
  private readonly workers: Array<{ worker: Worker; outstanding: number }> = [];
  private readonly pending = new Map<number, Pending>();
  private batch: Request[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private nextId = 1;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      // small heaps: a worker holds one 1 MiB buffer and a batch of paths, never more
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      });
      const slot = { worker, outstanding: 0 };
      worker.on('message', (replies: Reply[]) => {
        slot.outstanding -= replies.length;
        if (slot.outstanding === 0) worker.unref();
        for (const r of replies) this.settle(r);
      });
      worker.on('error', (e) => {
        // a worker that died takes its requests with it: fail them, never hang
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(e);
        }
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  run(req: Omit<Request, 'id'>): Promise<{ sha256: string; bytes: number }> {
    const id = this.nextId++;
    const promise = new Promise<{ sha256: string; bytes: number }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
    });
    this.batch.push({ ...req, id });
    this.batchBytes += Math.max(0, req.size);
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    return promise;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const slot = this.workers.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
    if (slot.outstanding === 0) slot.worker.ref();
    slot.outstanding += this.batch.length;
    slot.worker.postMessage(this.batch);
    this.batch = [];
    this.batchBytes = 0;
  }

  private settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.error || r.sha256 === undefined) {
      const e = new Error(r.error?.message ?? 'hashing failed') as NodeJS.ErrnoException;
      if (r.error?.code !== undefined) e.code = r.error.code;
      p.reject(e);
    } else {
      p.resolve({ sha256: r.sha256, bytes: r.bytes ?? 0 });
    }
  }
}

let shared: HashPool | undefined;

/** The process's pool: two to four workers (created on first use, never keeping the process alive). */
export function hashPool(): { run: HashPool['run'] } {
  shared ??= new HashPool(Math.max(2, Math.min(4, availableParallelism())));
  return { run: (req) => (shared as HashPool).run(req) };
}
