import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ChallengeSampler, type AckChallenge, type RandomInt } from '../core/ack-challenge.js';
import type { ManifestEntry } from '../core/manifest.js';
import { readManifest } from './manifest-file.js';

/**
 * The I/O half of the ack challenge (src/core/ack-challenge.ts), the same on both ends: the gate samples
 * a challenge from its handover copy and proves it against that copy (what it expects); the sink proves
 * it against its verified, published copy (its answer). Each proof reads only files its own manifest
 * names, as regular files, without following symlinks.
 */

/** The proof for one range: sha256 of the nonce's 32 bytes followed by the range's bytes, hex. */
export function answerRange(nonce: string, bytes: Buffer): string {
  return createHash('sha256').update(Buffer.from(nonce, 'hex')).update(bytes).digest('hex');
}

/** Samples a challenge from the generation `genDir` (its manifest read once, in constant memory). */
export async function sampleChallenge(
  genDir: string,
  manifestBytes: number,
  nonce: string,
  random: RandomInt,
): Promise<AckChallenge> {
  let sampler = new ChallengeSampler(random);
  try {
    let i = 0;
    for await (const e of readManifest(join(genDir, 'manifest'))) sampler.offer(i++, e.type, e.size);
  } catch {
    // A manifest the gate cannot read as one: challenge its bytes (the sink will not ack such a one).
    sampler = new ChallengeSampler(random);
  }
  return sampler.challenge(nonce, manifestBytes);
}

/**
 * The proofs of `challenge` from the generation in `genDir`, one per range, in order. Throws when a range
 * does not fit this copy: an entry that is no regular file of its manifest, a range past its end, a file
 * shorter than its range (the copies differ, or the challenge is hostile).
 */
export async function proveChallenge(genDir: string, challenge: AckChallenge): Promise<string[]> {
  const wanted = new Set<number>();
  for (const r of challenge.ranges) if (r.target.kind === 'file') wanted.add(r.target.entry);
  const entries = new Map<number, ManifestEntry>();
  if (wanted.size > 0) {
    const last = Math.max(...wanted);
    let i = 0;
    for await (const e of readManifest(join(genDir, 'manifest'))) {
      if (wanted.has(i)) entries.set(i, e);
      if (i++ >= last) break;
    }
  }
  const out: string[] = [];
  for (const r of challenge.ranges) {
    let file: string | Buffer;
    if (r.target.kind === 'manifest') {
      file = join(genDir, 'manifest');
    } else {
      const e = entries.get(r.target.entry);
      if (e === undefined || e.type !== 'f') throw new Error(`entry ${r.target.entry} is no regular file`);
      if (r.offset + r.length > e.size) throw new Error(`range past the end of entry ${r.target.entry}`);
      // a manifest path is raw bytes: the file name is built byte for byte, not through a string
      file = Buffer.concat([Buffer.from(`${join(genDir, 'tree')}/`), e.path]);
    }
    out.push(answerRange(challenge.nonce, await readRange(file, r.offset, r.length)));
  }
  return out;
}

/** Exactly `length` bytes at `offset` of the regular file `file` (not through a symlink). */
async function readRange(file: string | Buffer, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new Error('file shorter than the range');
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
