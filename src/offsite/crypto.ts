/**
 * Encryption and object naming for the offsite tier (age, X25519 recipients).
 *
 * - The sink holds public keys (`age1…`) only. A repository has a random 32-byte master key, stored in its
 *   `config` object age-encrypted to the recipients; `idKey = HKDF-SHA256(master key, info "baton offsite
 *   idKey v1")` names the objects: blob id = hex HMAC-SHA256(idKey, sha256(plain)), so the bucket listing does
 *   not reveal which known files it holds. Plain repositories: blob id = sha256(plain) hex.
 * - Every sealed blob is a complete age v1 file (`age -d -i identity` decrypts it alone, e.g. after a ranged
 *   GET). A `BlobSealer` wraps one random file key to the recipients once (one X25519 per recipient) and
 *   seals many blobs with it, each with its own random 16-byte payload nonce, so each blob gets its own
 *   payload key HKDF(file key, nonce, "payload") exactly as age derives it. The payload (ChaCha20-Poly1305
 *   STREAM, 64 KiB chunks) is done with node:crypto: age-encryption's pure-JS cipher and per-file X25519 run
 *   at ~25 MB/s and ~2 ms a blob here, far too slow for a million files. Consequence: blobs sealed by one
 *   sealer share a header (the engine uses one sealer per pack), which links them but reveals nothing more.
 * - `BlobOpener` unwraps a header once with the identity (age-encryption checks the header MAC) and caches
 *   the file key by the exact header bytes, then opens the payload with node:crypto.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Decrypter, Encrypter, type Recipient, type Stanza } from 'age-encryption';
import { ConfigError, errnoCode, JobError } from '../errors.js';

const STEP = 'offsite';
const MASTER_KEY_BYTES = 32;
/** A recipients or identity file larger than this is not one (it is read whole). */
export const MAX_KEY_FILE_BYTES = 256 * 1024;
/** A sealed blob's age header is a few hundred bytes per recipient; more is hostile. */
export const MAX_HEADER_BYTES = 64 * 1024;
const MAX_RECIPIENTS = 100;

const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;

const X25519_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const X25519_IDENTITY = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

/** The age recipient strings of a repository, each checked (bech32 checksum included). */
export type Recipients = readonly string[];

// ---------------------------------------------------------------------------------------------------------
// recipients and identities

/** Returns why `s` is not an age X25519 recipient, or undefined when it is one. */
export function recipientProblem(s: string): string | undefined {
  if (s.startsWith('age1pq1') || s.startsWith('age1tag')) {
    return 'post-quantum and tag recipients are not supported: use an X25519 key (age-keygen)';
  }
  if (!X25519_RECIPIENT.test(s))
    return 'not an age X25519 public key (age1 followed by 58 bech32 characters)';
  try {
    new Encrypter().addRecipient(s);
  } catch {
    return 'not a valid age public key (bad checksum)';
  }
  return undefined;
}

/**
 * Parses a list of recipients, from config (`source` names it) or from a recipients file: one per line,
 * blank lines and `#` comments allowed. A bad line throws one ConfigError naming `source:line`.
 */
export function parseRecipients(text: string, source: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const problem = recipientProblem(line);
    if (problem !== undefined) {
      throw new ConfigError(`${source}:${i + 1}: ${problem}: ${preview(line)}`, { step: STEP });
    }
    if (!out.includes(line)) out.push(line);
  }
  if (out.length === 0) throw new ConfigError(`${source}: no age recipient in it`, { step: STEP });
  if (out.length > MAX_RECIPIENTS) {
    throw new ConfigError(`${source}: more than ${MAX_RECIPIENTS} recipients`, { step: STEP });
  }
  return out;
}

/** Reads and parses a recipients file (`age -R` format restricted to X25519 keys). */
export async function readRecipientsFile(path: string): Promise<string[]> {
  return parseRecipients(await readKeyFile(path, 'recipients file'), path);
}

/**
 * Parses an age identity file as `age-keygen` writes it (comments, blank lines, one or more
 * `AGE-SECRET-KEY-1…` lines). Throws one JobError naming `source:line`; never echoes a key.
 */
export function parseIdentities(text: string, source: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('age-encryption.org/') || line.startsWith('-----BEGIN AGE')) {
      throw new JobError(
        `${source}: a passphrase-encrypted identity file is not supported: decrypt it first`,
        {
          step: STEP,
        },
      );
    }
    let ok = X25519_IDENTITY.test(line);
    if (ok) {
      try {
        new Decrypter().addIdentity(line);
      } catch {
        ok = false;
      }
    }
    if (!ok)
      throw new JobError(`${source}:${i + 1}: not an age X25519 identity (AGE-SECRET-KEY-1…)`, {
        step: STEP,
      });
    out.push(line);
  }
  if (out.length === 0) throw new JobError(`${source}: no age identity in it`, { step: STEP });
  return out;
}

/** Reads an identity file: a missing or unreadable file is one clear line. */
export async function readIdentityFile(path: string): Promise<string[]> {
  return parseIdentities(await readKeyFile(path, 'identity file'), path);
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new JobError(`${what} ${path} is not a regular file`, { step: STEP });
    if (st.size > MAX_KEY_FILE_BYTES) {
      throw new JobError(`${what} ${path} is larger than ${MAX_KEY_FILE_BYTES} bytes`, { step: STEP });
    }
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof JobError) throw err;
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new JobError(`${what} ${path} does not exist`, { step: STEP });
    throw new JobError(`cannot read ${what} ${path}: ${code ?? String(err)}`, { step: STEP });
  }
}

function preview(s: string): string {
  return JSON.stringify(s.length > 24 ? `${s.slice(0, 24)}…` : s);
}

// ---------------------------------------------------------------------------------------------------------
// master key and object ids

/** A fresh random repository master key. */
export function createMasterKey(): Uint8Array {
  return new Uint8Array(randomBytes(MASTER_KEY_BYTES));
}

/** The master key age-encrypted to the recipients, base64 (the `keys` field of the repository config). */
export async function wrapMasterKey(masterKey: Uint8Array, recipients: Recipients): Promise<string> {
  if (masterKey.length !== MASTER_KEY_BYTES) throw new Error('master key must be 32 bytes');
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return Buffer.from(await e.encrypt(masterKey)).toString('base64');
}

/**
 * Unwraps the repository master key with the identities; `source` names the identity file in the error.
 * A wrong identity is one clear JobError.
 */
export async function unwrapMasterKey(
  wrapped: string,
  identities: readonly string[],
  source: string,
): Promise<Uint8Array> {
  const d = new Decrypter();
  for (const id of identities) d.addIdentity(id);
  let key: Uint8Array;
  try {
    key = await d.decrypt(Buffer.from(wrapped, 'base64'));
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (msg.includes('no identity matched')) {
      throw new JobError(`the identity in ${source} is not one of this repository's recipients`, {
        step: STEP,
      });
    }
    throw new JobError(`the repository key in the bucket's config is damaged: ${msg}`, { step: STEP });
  }
  if (key.length !== MASTER_KEY_BYTES) {
    throw new JobError(`the repository key in the bucket's config is damaged (${key.length} bytes)`, {
      step: STEP,
    });
  }
  return key;
}

/** idKey = HKDF-SHA256(master key, empty salt, info "baton offsite idKey v1"), 32 bytes. */
export function deriveIdKey(masterKey: Uint8Array): Uint8Array {
  if (masterKey.length !== MASTER_KEY_BYTES) throw new Error('master key must be 32 bytes');
  return new Uint8Array(hkdfSync('sha256', masterKey, new Uint8Array(0), 'baton offsite idKey v1', 32));
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The object id of a blob whose plaintext has sha256 `plainSha256` (hex): HMAC-SHA256(idKey, the 32 raw
 * digest bytes) hex when `idKey` is given (encrypted repository), else the sha256 itself.
 */
export function blobIdFromSha256(idKey: Uint8Array | undefined, plainSha256: string): string {
  if (!SHA256_HEX.test(plainSha256)) throw new Error(`not a sha256 hex digest: ${preview(plainSha256)}`);
  if (idKey === undefined) return plainSha256;
  return createHmac('sha256', idKey).update(Buffer.from(plainSha256, 'hex')).digest('hex');
}

/** The object id of `plain` (see blobIdFromSha256). */
export function blobId(idKey: Uint8Array | undefined, plain: Uint8Array): string {
  return blobIdFromSha256(idKey, sha256Hex(plain));
}

// ---------------------------------------------------------------------------------------------------------
// sealing and opening blobs

/** Captures the file key age-encryption draws, so that one header can front many blobs. */
class FileKeyTap implements Recipient {
  fileKey: Uint8Array | undefined;
  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    this.fileKey = fileKey;
    return [];
  }
}

/** The encrypted size of a `plainLength`-byte payload (STREAM chunks + tags + nonce), without the header. */
function sealedPayloadSize(plainLength: number): number {
  const chunks = plainLength === 0 ? 1 : Math.ceil(plainLength / CHUNK);
  return NONCE + plainLength + chunks * TAG;
}

function streamNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6); // 11-byte big-endian counter; 2^48 chunks is far beyond any blob
  n[11] = last ? 1 : 0;
  return n;
}

function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

/** Seals blobs for the recipients: every output is a complete age file. */
export class BlobSealer {
  private constructor(
    private readonly header: Buffer,
    private readonly fileKey: Uint8Array,
  ) {}

  /** Wraps a fresh file key to the recipients (the only asymmetric work, once per sealer). */
  static async create(recipients: Recipients): Promise<BlobSealer> {
    if (recipients.length === 0) throw new Error('no recipients');
    const e = new Encrypter();
    for (const r of recipients) e.addRecipient(r);
    const tap = new FileKeyTap();
    e.addRecipient(tap);
    const empty = await e.encrypt(new Uint8Array(0));
    if (tap.fileKey === undefined) throw new Error('age-encryption did not draw a file key');
    const headerLength = ageHeaderLength(empty);
    if (headerLength === undefined || empty.length !== headerLength + sealedPayloadSize(0)) {
      throw new Error('age-encryption wrote an unexpected file layout');
    }
    return new BlobSealer(Buffer.from(empty.subarray(0, headerLength)), tap.fileKey);
  }

  /** Size of the sealed form of a `plainLength`-byte blob. */
  sealedSize(plainLength: number): number {
    return this.header.length + sealedPayloadSize(plainLength);
  }

  /** Returns `plain` as an age file: header, fresh 16-byte nonce, ChaCha20-Poly1305 STREAM. */
  seal(plain: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(this.sealedSize(plain.length));
    let pos = this.header.copy(out, 0);
    const nonce = randomBytes(NONCE);
    pos += nonce.copy(out, pos);
    const key = payloadKey(this.fileKey, nonce);
    let counter = 0;
    let off = 0;
    do {
      const end = Math.min(off + CHUNK, plain.length);
      const last = end === plain.length;
      const c = createCipheriv('chacha20-poly1305', key, streamNonce(counter, last), { authTagLength: TAG });
      pos += c.update(plain.subarray(off, end)).copy(out, pos);
      c.final();
      pos += c.getAuthTag().copy(out, pos);
      counter++;
      off = end;
    } while (off < plain.length);
    if (pos !== out.length) throw new Error('sealed size mismatch');
    return out;
  }

  /**
   * The same age file as `seal`, produced piece by piece from a stream of plaintext of any size (a large
   * manifest or files map never sits in memory whole). Memory: one 64 KiB chunk.
   */
  async *sealStream(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
    yield Buffer.from(this.header);
    const nonce = randomBytes(NONCE);
    yield nonce;
    const key = payloadKey(this.fileKey, nonce);
    let counter = 0;
    const encryptChunk = (plain: Uint8Array, last: boolean): Buffer => {
      const c = createCipheriv('chacha20-poly1305', key, streamNonce(counter++, last), {
        authTagLength: TAG,
      });
      const body = c.update(plain);
      c.final();
      return Buffer.concat([body, c.getAuthTag()]);
    };
    // one chunk buffer, filled in place (no copy of what is pending per piece read)
    const chunk = Buffer.allocUnsafe(CHUNK);
    let used = 0;
    for await (const piece of source) {
      for (let off = 0; off < piece.length;) {
        // A full chunk is the last one only if nothing follows it: sealed once more bytes arrive.
        if (used === CHUNK) {
          yield encryptChunk(chunk, false);
          used = 0;
        }
        const n = Math.min(CHUNK - used, piece.length - off);
        chunk.set(piece.subarray(off, off + n), used);
        used += n;
        off += n;
      }
    }
    yield encryptChunk(chunk.subarray(0, used), true);
  }
}

/** Length of the age header at the start of `file` (through the MAC line's newline), if there is one. */
function ageHeaderLength(file: Uint8Array): number | undefined {
  const prefix = Buffer.from('age-encryption.org/v1\n');
  const limit = Math.min(file.length, MAX_HEADER_BYTES);
  const head = Buffer.from(file.buffer, file.byteOffset, limit);
  if (!head.subarray(0, prefix.length).equals(prefix)) return undefined;
  const mac = head.indexOf('\n--- ');
  if (mac < 0) return undefined;
  const nl = head.indexOf(0x0a, mac + 5);
  return nl < 0 ? undefined : nl + 1;
}

/** Thrown when a sealed blob cannot be opened: tampered, truncated, or for another identity. */
export class BlobOpenError extends JobError {}

/** Opens sealed blobs with the identities; caches each distinct header's file key. */
export class BlobOpener {
  private readonly decrypter = new Decrypter();
  private readonly fileKeys = new Map<string, Uint8Array>();

  constructor(identities: readonly string[]) {
    if (identities.length === 0) throw new Error('no identities');
    for (const id of identities) this.decrypter.addIdentity(id);
  }

  /** The plaintext of `sealed`; `what` names the blob in the one-line error. */
  async open(sealed: Uint8Array, what: string): Promise<Uint8Array> {
    const headerLength = ageHeaderLength(sealed);
    if (headerLength === undefined)
      throw new BlobOpenError(`${what}: not an age file (damaged?)`, { step: STEP });
    const header = sealed.subarray(0, headerLength);
    const fileKey = await this.fileKeyOf(header, what);
    const body = sealed.subarray(headerLength);
    if (body.length < NONCE + TAG) throw new BlobOpenError(`${what}: truncated`, { step: STEP });
    const key = payloadKey(fileKey, body.subarray(0, NONCE));
    const payload = body.subarray(NONCE);
    const chunks = Math.ceil(payload.length / (CHUNK + TAG));
    const lastLength = payload.length - (chunks - 1) * (CHUNK + TAG);
    if (lastLength < TAG || (lastLength === TAG && chunks > 1)) {
      throw new BlobOpenError(`${what}: truncated or damaged`, { step: STEP });
    }
    const out = Buffer.allocUnsafe(payload.length - chunks * TAG);
    let pos = 0;
    for (let i = 0; i < chunks; i++) {
      const start = i * (CHUNK + TAG);
      const end = Math.min(start + CHUNK + TAG, payload.length);
      const d = createDecipheriv('chacha20-poly1305', key, streamNonce(i, i === chunks - 1), {
        authTagLength: TAG,
      });
      d.setAuthTag(payload.subarray(end - TAG, end));
      try {
        pos += d.update(payload.subarray(start, end - TAG)).copy(out, pos);
        d.final();
      } catch {
        throw new BlobOpenError(`${what}: decryption failed (tampered, truncated or reordered data)`, {
          step: STEP,
        });
      }
    }
    return out;
  }

  /**
   * Opens an age file arriving piece by piece (e.g. a streamed GET of a large generation object); yields the
   * plaintext chunk by chunk, each authenticated before it is yielded. A truncated stream throws at its end,
   * so the caller must not treat what it wrote as complete before the generator finishes.
   */
  async *openStream(
    source: AsyncIterable<Uint8Array>,
    what: string,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let buf = Buffer.alloc(0);
    let key: Buffer | undefined;
    let counter = 0;
    const decryptChunk = (sealed: Uint8Array, last: boolean): Buffer => {
      const d = createDecipheriv('chacha20-poly1305', key as Buffer, streamNonce(counter++, last), {
        authTagLength: TAG,
      });
      d.setAuthTag(sealed.subarray(sealed.length - TAG));
      try {
        const out = d.update(sealed.subarray(0, sealed.length - TAG));
        d.final();
        return out;
      } catch {
        throw new BlobOpenError(`${what}: decryption failed (tampered, truncated or reordered data)`, {
          step: STEP,
        });
      }
    };
    for await (const piece of source) {
      buf = buf.length === 0 ? Buffer.from(piece) : Buffer.concat([buf, piece]);
      if (key === undefined) {
        const headerLength = ageHeaderLength(buf);
        if (headerLength === undefined) {
          if (buf.length >= MAX_HEADER_BYTES)
            throw new BlobOpenError(`${what}: not an age file (damaged?)`, { step: STEP });
          continue;
        }
        if (buf.length < headerLength + NONCE) continue;
        const fileKey = await this.fileKeyOf(buf.subarray(0, headerLength), what);
        key = payloadKey(fileKey, buf.subarray(headerLength, headerLength + NONCE));
        buf = buf.subarray(headerLength + NONCE);
      }
      while (buf.length > CHUNK + TAG) {
        yield decryptChunk(buf.subarray(0, CHUNK + TAG), false);
        buf = buf.subarray(CHUNK + TAG);
      }
    }
    if (key === undefined) throw new BlobOpenError(`${what}: not an age file or truncated`, { step: STEP });
    if (buf.length < TAG || (buf.length === TAG && counter > 0)) {
      throw new BlobOpenError(`${what}: truncated or damaged`, { step: STEP });
    }
    yield decryptChunk(buf, true);
  }

  private async fileKeyOf(header: Uint8Array, what: string): Promise<Uint8Array> {
    const cacheKey = Buffer.from(header).toString('latin1');
    const cached = this.fileKeys.get(cacheKey);
    if (cached !== undefined) return cached;
    let fileKey: Uint8Array;
    try {
      fileKey = await this.decrypter.decryptHeader(header);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (msg.includes('no identity matched')) {
        throw new BlobOpenError(`${what}: the identity is not one of the recipients it was encrypted to`, {
          step: STEP,
        });
      }
      throw new BlobOpenError(`${what}: damaged age header (${msg})`, { step: STEP });
    }
    if (this.fileKeys.size >= 4096) this.fileKeys.clear();
    this.fileKeys.set(cacheKey, fileKey);
    return fileKey;
  }
}
