import { lutimes } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { JobError } from '../errors.js';
import { describeExit, runProcess } from './run.js';

/**
 * Sets mtimes to the nanosecond without following symlinks. Node's utimes rounds to the
 * microsecond (libuv), so a faithful restore hands the times to python3's `os.utime(ns=…)` in
 * batches (one process per batch, records `<ns>\0<path>\0` on stdin). Without python3 it falls
 * back to Node's lutimes and says so through `precision`.
 */
export interface TimeSetter {
  readonly precision: 'ns' | 'us';
  /** queue a path (absolute, raw bytes) to get `mtimeNs` as its mtime and atime */
  add(path: Buffer, mtimeNs: bigint): void;
  /** true when enough records wait that the caller should flush now */
  readonly due: boolean;
  /** apply every queued record (call from one place at a time) */
  flush(): Promise<void>;
}

// Reads the whole batch, applies it in order, stops at the first failure naming the path.
const PY_SET_TIMES = `import os, sys
f = sys.stdin.buffer.read().split(b"\\0")
for i in range(0, len(f) - 1, 2):
    t = int(f[i]); p = f[i + 1]
    try:
        os.utime(p, ns=(t, t), follow_symlinks=False)
    except OSError as e:
        sys.stderr.write("%s: %s\\n" % (os.fsdecode(p), e.strerror)); sys.exit(1)
`;

const BATCH_RECORDS = 20_000;
const BATCH_BYTES = 4 * 1024 * 1024;

async function findPython(): Promise<string | undefined> {
  for (const py of existsSync('/usr/bin/python3') ? ['/usr/bin/python3', 'python3'] : ['python3']) {
    const r = await runProcess([py, '-c', 'import os; os.utime'], { timeoutMs: 30_000 });
    if (r.code === 0) return py;
  }
  return undefined;
}

export async function createTimeSetter(): Promise<TimeSetter> {
  const python = await findPython();
  let records: Array<{ path: Buffer; ns: bigint }> = [];
  let bytes = 0;
  return {
    precision: python ? 'ns' : 'us',
    add(path, ns) {
      records.push({ path, ns });
      bytes += path.length + 24;
    },
    get due() {
      return records.length >= BATCH_RECORDS || bytes >= BATCH_BYTES;
    },
    async flush() {
      const batch = records;
      records = [];
      bytes = 0;
      if (batch.length === 0) return;
      if (python === undefined) {
        for (const r of batch) {
          const s = Number(r.ns / 1000n) / 1e6;
          await lutimes(r.path, s, s);
        }
        return;
      }
      const zero = Buffer.from([0]);
      const input = Buffer.concat(batch.flatMap((r) => [Buffer.from(r.ns.toString()), zero, r.path, zero]));
      const res = await runProcess([python, '-c', PY_SET_TIMES], { input, timeoutMs: 10 * 60_000 });
      if (res.code !== 0 || res.timedOut) {
        throw new JobError(`setting mtimes failed: ${describeExit(res)}`, { step: 'restore' });
      }
    },
  };
}
