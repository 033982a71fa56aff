import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlinkSync, unlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyGeneration, type VerifyResult } from '../../src/generation/verify.js';
import { fileEntry, writeGenerationDir } from '../helpers/generation-builder.js';

// Issue 14 (verify --deep): a file the walk saw as a regular file but that is gone or swapped by the
// time it is hashed is a named problem of the generation: never a crash of the whole check, a read
// through a symlink, or a hang on a FIFO.

/** Verifies a two-file generation, swapping tree/b (`swap(abs)`) just before it is read. */
async function verifyWithSwap(swap: (abs: string) => void): Promise<VerifyResult> {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-swap-'));
  try {
    const dir = join(root, 'gen');
    await mkdir(dir);
    const es = [fileEntry('a', 'alpha\n'), fileEntry('b', 'beta\n')];
    await writeGenerationDir(dir, { entries: es, tree: { a: 'alpha\n', b: 'beta\n' } });
    return await verifyGeneration({
      dir,
      hashes: true,
      // asked right before a file is read: the moment a racing writer could swap it
      knownHash: (rel) => {
        if (rel.toString() === 'b') swap(join(dir, 'tree', 'b'));
        return undefined;
      },
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function assertNamed(r: VerifyResult, detail: RegExp): void {
  assert.equal(r.ok, false);
  assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
  const p = r.problems[0];
  assert.equal(p?.path, 'b');
  assert.equal(p?.kind, 'hash');
  assert.match(p?.detail ?? '', detail);
}

test('a file removed after the walk saw it is named (unreadable: ENOENT), the check goes on', async () => {
  assertNamed(await verifyWithSwap((abs) => unlinkSync(abs)), /^unreadable: ENOENT$/);
});

test('a file swapped for a symlink after the walk is not read through (ELOOP)', async () => {
  assertNamed(
    await verifyWithSwap((abs) => {
      unlinkSync(abs);
      symlinkSync('/etc/passwd', abs);
    }),
    /^unreadable: ELOOP$/,
  );
});

test('a file swapped for a FIFO after the walk does not hang the check', { timeout: 20_000 }, async () => {
  assertNamed(
    await verifyWithSwap((abs) => {
      unlinkSync(abs);
      execFileSync('mkfifo', [abs]);
    }),
    /^unreadable: /,
  );
});
