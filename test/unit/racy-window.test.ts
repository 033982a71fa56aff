/**
 * Issue #14, the live pre-pass's "racily clean" window: a copy the pre-pass made of a file whose
 * mtime is within the filesystem's timestamp granularity of the pre-pass's start (or later) is
 * dropped, so the pass while the app is down copies the file again. Real files, real find.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  COARSE_RACY_MARGIN_MS,
  FINE_RACY_MARGIN_MS,
  dropRacyFiles,
  mountPoints,
  racyCutoffMs,
  racyMarginMs,
} from '../../src/source/collect.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-racy-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the cutoff: fine margins from the start itself, whole-second margins below the start second', () => {
  assert.equal(racyCutoffMs(1_000_000_123, FINE_RACY_MARGIN_MS), 1_000_000_103);
  assert.equal(racyCutoffMs(1_000_000_123, COARSE_RACY_MARGIN_MS), 999_998_000);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 42 }), fc.integer({ min: 1, max: 5000 }), (start, margin) => {
      const cut = racyCutoffMs(start, margin);
      // never later than start - margin: a file stamped within the margin is always racy
      assert.ok(cut <= start - margin);
      if (margin >= 1000) assert.equal((cut + margin) % 1000, 0);
    }),
  );
});

test('dropRacyFiles drops exactly the files stamped at or after the cutoff (to the millisecond)', async () => {
  const cutoff = Date.now() - 60_000;
  const at = (name: string, ms: number) => ({ file: join(dir, name), ms });
  const files = [
    at('older.txt', cutoff - 1),
    at('at.txt', cutoff),
    at('just-after.txt', cutoff + 1),
    at('future.txt', cutoff + 3_600_000),
  ];
  for (const f of files) {
    await writeFile(f.file, 'x');
    await utimes(f.file, f.ms / 1000, f.ms / 1000);
  }
  assert.equal((await dropRacyFiles(dir, cutoff)).length, 3);
  assert.deepEqual(
    files.map((f) => existsSync(f.file)),
    [true, false, false, false],
  );
});

test('the margin is fine on a filesystem that keeps nanoseconds, whole seconds elsewhere', async () => {
  const m = await racyMarginMs([dir]);
  assert.ok(m === FINE_RACY_MARGIN_MS || m === COARSE_RACY_MARGIN_MS);
  // a path whose own mtime has no sub-second part is not proof of nanosecond timestamps
  await utimes(dir, 1_700_000_000, 1_700_000_000);
  assert.equal(await racyMarginMs([dir]), COARSE_RACY_MARGIN_MS);
  // something is mounted below / (here /proc at least): rsync would cross into it
  assert.equal(await racyMarginMs(['/']), COARSE_RACY_MARGIN_MS);
  assert.equal(await racyMarginMs([join(dir, 'missing')]), COARSE_RACY_MARGIN_MS);
});

test('mount points are read from mountinfo with their octal escapes undone', () => {
  const text =
    '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n' + '40 22 0:35 / /mnt/my\\040data rw - btrfs /dev/sdb rw\n';
  assert.deepEqual(mountPoints(text), ['/', '/mnt/my data']);
});
