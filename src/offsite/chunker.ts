/**
 * Content-defined chunking (FastCDC, Xia et al. 2016, with normalized chunking) for the offsite tier.
 *
 * A cut point depends only on the bytes since the previous cut: the gear table below is fixed in the code
 * (never derived from a key or a run), the hash restarts at every chunk, and a chunk is only cut once the
 * buffer holds `maxSize` bytes or the file has ended, so read sizes never move a boundary. Same bytes, same
 * chunks, on every host and every run; a few rewritten bytes change only the chunk(s) around them, after
 * which the cut points fall back in step with the old ones.
 *
 * The gear hash is 32 bits wide: bit k of the hash depends on the last k+1 bytes, so the masks test the TOP
 * bits (each depends on the last 22..32 bytes). Normalized chunking level 2: before `avgSize` the mask has
 * log2(avg)+2 bits (a cut is rarer), after it log2(avg)-2 bits (a cut is likelier), which narrows the size
 * distribution around `avgSize`.
 */
import { open } from 'node:fs/promises';
import { chunkerParamsProblem, type ChunkerParams } from '../core/offsite-records.js';

export { CHUNKER_LIMITS, chunkerParamsProblem, type ChunkerParams } from '../core/offsite-records.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** The repository default: 256 KiB / 1 MiB / 4 MiB. */
export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = Object.freeze({
  minSize: 256 * KiB,
  avgSize: 1 * MiB,
  maxSize: 4 * MiB,
});

/**
 * The gear table: 256 fixed 32-bit values (the first 4 bytes of sha256("baton fastcdc gear <i>")).
 * Changing one value changes every chunk boundary: it is part of the repository format.
 */
const GEAR = new Int32Array([
  0xb9647898, 0x2af5ab3b, 0x0ffe21ac, 0x7690f2c7, 0x5cbd8b85, 0x9394ab39, 0x6213babe, 0x1c97dd0b, 0xa3d3cbcd,
  0x024c6f70, 0x43bac6b5, 0xbb06fc80, 0x8311e931, 0x92f184d4, 0x71070bcd, 0x2499bba2, 0xb022ec1f, 0x3730dfa3,
  0xfb6d6218, 0xdb651da4, 0x0ecf3e9a, 0x520d2dc7, 0xc7902e69, 0xb607dfb2, 0xfa429cbe, 0xe1e19a7d, 0x96027bcd,
  0xf1231522, 0xf56767bc, 0x9bfc5c8f, 0xfca35403, 0x9991cc18, 0xbc4c5742, 0x363c6a02, 0x25f4f5aa, 0x5d78a686,
  0x1ffce73a, 0x4945ceba, 0x230aac70, 0xc71dc741, 0x23523734, 0x9a38021f, 0xfc9083e7, 0x02508cee, 0xb0c79b7f,
  0x8c2cdc87, 0x3bba3c94, 0x0f1896eb, 0xa4e63188, 0x5d55829d, 0xe3441dd1, 0xfb76ef76, 0x964cb78b, 0x21b3ffe2,
  0xa5038143, 0x1136ff58, 0x4ae1bee3, 0x280417fa, 0xf4dc5eba, 0xae2d5cb4, 0xac46a6b9, 0x19761810, 0x69f8419b,
  0x959a32f7, 0x3dbb22a4, 0x2b907f65, 0x5c41c017, 0x61fe7559, 0x927968d1, 0xea2a682e, 0xe97aca23, 0xb6b85b67,
  0x52b57033, 0x509eb341, 0x8a9823e1, 0x1ddf847a, 0x38e65110, 0x8f15efe9, 0x7a8bb823, 0x8b3f1e63, 0xb769a9bd,
  0xd9e1723a, 0x7de266bf, 0xe4449c17, 0x447a5f49, 0xff10e542, 0xe7ac7c6f, 0xa49fdad8, 0x048e9f36, 0xa9a7fec9,
  0x0624c88b, 0xad8cf897, 0xb3e84042, 0xb4b24919, 0x3a073ee0, 0xd4de9198, 0xf758ed17, 0x78f3a3c7, 0x0933ecbf,
  0xbb91e3da, 0x4292c971, 0x24719483, 0xf943996f, 0xec8c3ab4, 0x6a8c9089, 0xd839b7fe, 0x6753a67a, 0xdc5483bd,
  0x12e6dfef, 0xa3b8a029, 0x5aaaff8b, 0xf1486009, 0x7ac29806, 0xad4df5bc, 0xcc819ee5, 0xa6f30c5e, 0x4ee53757,
  0x01ea7b70, 0x0483057d, 0xc332db9e, 0xd3c1d67c, 0x52e8613f, 0x6f80f132, 0x95ff60ab, 0xe47c97b8, 0x5ab9c399,
  0xc914d62e, 0x4c45b446, 0xd1f5d298, 0x477deba5, 0xd0a8b84e, 0xf0ccd453, 0x8c1ccc90, 0x5b54b358, 0xa6213bbe,
  0xd19f0fee, 0x53066b8f, 0x84b8a2aa, 0x25c3bd11, 0xf8356551, 0xef724c7d, 0xa3137842, 0xb5d34561, 0x6c02d8d3,
  0x1df7ddf7, 0x067f6390, 0x198b6f42, 0x2e412ace, 0xfa9b6186, 0x72813ec8, 0x058a6403, 0x8e02d1a7, 0x53bf7505,
  0x644dbe6d, 0x83562c35, 0x86788a20, 0x1498a8a8, 0xad2f87f6, 0x69acb6d1, 0x703023f4, 0x128c83ee, 0xfe20e9c0,
  0xb73b93b9, 0x3d5dc412, 0xe5a8a4e5, 0x9d6e8193, 0xde2f3fc0, 0x18118ba8, 0x6425faef, 0xd55b7c14, 0xe21d6602,
  0x58369f16, 0x4021d851, 0x8df067a5, 0xd29f142f, 0x79872936, 0xeec7f163, 0x89f3dc64, 0xc884cdc0, 0x19b97b91,
  0x3221c5e9, 0x0f5a36cc, 0xc11eaa48, 0x5a6fc53c, 0x8af202e7, 0xe1b60eae, 0xd761d3ee, 0xd330277c, 0x835f619c,
  0x55ccbaf5, 0x418c1b50, 0x04653c24, 0xe2365e93, 0x268eb1fc, 0x9ba0dbf7, 0x12806296, 0x7d37557d, 0xdd5225c9,
  0x71b60dc2, 0x57fd5642, 0xda2275c4, 0x4973661f, 0x56bfdf97, 0xda4471f9, 0x5a7ac5d1, 0x11e2b47f, 0x1004d030,
  0x9fd2d511, 0x2d1439a2, 0x9f6b64a2, 0xe1cacc18, 0x3d6a4598, 0xc3058c6f, 0x3a50e6e9, 0x648f98e0, 0x44a892bb,
  0xa96cd4e3, 0x3f53357a, 0x1be014dc, 0x56ee9880, 0xf9b15e38, 0x381a79a2, 0x28fc3ebe, 0x579c6d5b, 0xdf895ce5,
  0x338d7e4b, 0xf736ae05, 0xdb2cfd60, 0xaa09ee47, 0xf6178568, 0x880eabd3, 0xfdd83651, 0x39b90f38, 0x79c689f5,
  0xaff2dc41, 0xe1217719, 0x44ab9577, 0x0e58597d, 0x2706dc26, 0x9726ae5f, 0x789a9200, 0x3d15f7c4, 0x947945ad,
  0x20e47c2c, 0x4a201337, 0xb665e6a7, 0x0bee2830, 0xe7592c9a, 0xae4296e9, 0xb1cc5e26, 0x3aad3a27, 0xbf63a527,
  0x2331c5ec, 0x1928c1e7, 0x6fdf1ca3, 0xb86f6b1e,
]);

/** Throws a one-line Error when the parameters are unusable; returns them otherwise. */
export function checkChunkerParams(p: ChunkerParams): ChunkerParams {
  const problem = chunkerParamsProblem(p);
  if (problem !== undefined) throw new Error(problem);
  return p;
}

/** A mask of the top `bits` bits of a 32-bit word, as an int32. */
function topBitsMask(bits: number): number {
  return bits >= 32 ? -1 : ~(-1 >>> bits) | 0;
}

interface Masks {
  readonly small: number;
  readonly large: number;
}
const masksCache = new Map<number, Masks>();
function masksFor(avgSize: number): Masks {
  let m = masksCache.get(avgSize);
  if (m === undefined) {
    const bits = Math.round(Math.log2(avgSize));
    m = { small: topBitsMask(bits + 2), large: topBitsMask(Math.max(1, bits - 2)) };
    masksCache.set(avgSize, m);
  }
  return m;
}

/**
 * Given `data[start, end)` where either `end - start >= maxSize` or `end` is the end of the input, returns
 * the length of the next chunk starting at `start`. Pure; depends on the bytes from `start` only.
 */
export function findChunkEnd(data: Uint8Array, start: number, end: number, p: ChunkerParams): number {
  let n = end - start;
  if (n <= p.minSize) return n;
  if (n > p.maxSize) n = p.maxSize;
  const normal = n < p.avgSize ? n : p.avgSize;
  const { small, large } = masksFor(p.avgSize);
  const gear = GEAR;
  let h = 0;
  let i = p.minSize;
  for (; i < normal; i++) {
    h = ((h << 1) + (gear[data[start + i] as number] as number)) | 0;
    if ((h & small) === 0) return i + 1;
  }
  for (; i < n; i++) {
    h = ((h << 1) + (gear[data[start + i] as number] as number)) | 0;
    if ((h & large) === 0) return i + 1;
  }
  return n;
}

/** Chunk lengths of a whole in-memory buffer (an empty buffer has no chunks). Pure. */
export function chunkLengths(data: Uint8Array, p: ChunkerParams): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < data.length) {
    const len = findChunkEnd(data, pos, data.length, p);
    out.push(len);
    pos += len;
  }
  return out;
}

export interface FileChunk {
  /** Byte offset of the chunk in the file. */
  readonly offset: number;
  /** The chunk's bytes: a fresh copy the caller owns. */
  readonly bytes: Uint8Array;
}

export interface ChunkFileOptions {
  readonly signal?: AbortSignal;
  /** Called with every block read, in order (e.g. to hash the whole file while chunking it). */
  readonly onRead?: (block: Uint8Array) => void;
  /** Largest single read (tests vary it to show that read sizes never move a boundary). */
  readonly readSize?: number;
}

/**
 * Yields the chunks of the file at `path`, in order. Memory: one buffer of `maxSize` bytes plus the chunk
 * handed out. An empty file yields no chunk; a file of at most `minSize` bytes yields exactly one.
 */
export async function* chunkFile(
  path: string,
  p: ChunkerParams,
  opts: ChunkFileOptions = {},
): AsyncGenerator<FileChunk, void, undefined> {
  checkChunkerParams(p);
  const readSize = opts.readSize ?? p.maxSize;
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(p.maxSize);
    let filled = 0;
    let offset = 0;
    let eof = false;
    for (;;) {
      while (!eof && filled < p.maxSize) {
        opts.signal?.throwIfAborted();
        const want = Math.min(readSize, p.maxSize - filled);
        const { bytesRead } = await fh.read(buf, filled, want, null);
        if (bytesRead === 0) eof = true;
        else {
          opts.onRead?.(buf.subarray(filled, filled + bytesRead));
          filled += bytesRead;
        }
      }
      if (filled === 0) return;
      const len = findChunkEnd(buf, 0, filled, p);
      const bytes = new Uint8Array(len);
      bytes.set(buf.subarray(0, len));
      buf.copyWithin(0, len, filled);
      filled -= len;
      yield { offset, bytes };
      offset += len;
    }
  } finally {
    await fh.close();
  }
}
