/**
 * The ObjectStore on S3 and S3-compatibles (@aws-sdk/client-s3). One retry loop of our own (the SDK's
 * is off: maxAttempts 1) so every operation — including a GET whose body is cut short, which the SDK
 * cannot retry — backs off the same way and fails with one line naming the operation, the store and
 * the last reason. Multipart uploads are done here part by part (each part retried on its own, read
 * from the file at its offset, so memory stays at `concurrency × partSize`), with Content-MD5 per
 * part where the provider wants it. Credentials never reach a message: the describe string carries
 * bucket, prefix and endpoint only, and SDK messages are scrubbed of the key pair.
 *
 * S3 actions used (a least-privilege policy on the bucket / `prefix/*`): s3:ListBucket,
 * s3:ListBucketVersions, s3:GetObject (GET and HEAD; HEAD also reads the lock headers, which needs
 * s3:GetObjectRetention), s3:PutObject, s3:PutObjectRetention, s3:DeleteObject,
 * s3:DeleteObjectVersion, s3:AbortMultipartUpload. Never s3:BypassGovernanceRetention.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type ObjectLockMode,
} from '@aws-sdk/client-s3';
import { ConfigError, errnoCode } from '../errors.js';
import {
  ObjectExistsError,
  ObjectMissingError,
  OffsiteError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from './object-store.js';

export const PROVIDERS = ['aws', 'minio', 'ceph', 'b2', 'r2', 'generic'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** What each S3 implementation accepts. */
export interface ProviderProfile {
  /**
   * SDK flexible checksums: WHEN_SUPPORTED sends CRC32 headers on every upload (AWS, MinIO); the
   * others get WHEN_REQUIRED, since R2, B2, older Ceph RGW and s3rver reject or mangle them.
   */
  checksum: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** Send Content-MD5 on every PUT and part (Object Lock buckets refuse uploads without a checksum). */
  contentMd5: boolean;
  /** Per-object retention headers (x-amz-object-lock-*) are implemented. */
  objectLock: boolean;
  maxParts: number;
  minPartSize: number;
  maxPartSize: number;
  /** Virtual-host style works by default (false: path style unless configured otherwise). */
  virtualHost: boolean;
}

const base = { maxParts: 10_000, minPartSize: 5 * MiB, maxPartSize: 5 * GiB } as const;
export const PROVIDER_PROFILES: Readonly<Record<ProviderName, ProviderProfile>> = {
  aws: { ...base, checksum: 'WHEN_SUPPORTED', contentMd5: true, objectLock: true, virtualHost: true },
  minio: { ...base, checksum: 'WHEN_SUPPORTED', contentMd5: true, objectLock: true, virtualHost: false },
  ceph: { ...base, checksum: 'WHEN_REQUIRED', contentMd5: true, objectLock: true, virtualHost: false },
  b2: { ...base, checksum: 'WHEN_REQUIRED', contentMd5: true, objectLock: true, virtualHost: true },
  // R2 has bucket-level lock rules only; per-object retention headers are not implemented.
  r2: { ...base, checksum: 'WHEN_REQUIRED', contentMd5: true, objectLock: false, virtualHost: true },
  generic: { ...base, checksum: 'WHEN_REQUIRED', contentMd5: true, objectLock: true, virtualHost: false },
};

/** The typed options the `offsite:` config section is turned into (the engine owns the schema). */
export interface OffsiteStoreOptions {
  /** `https://host[:port]`; omitted for AWS (the region's endpoint). */
  endpoint?: string;
  region?: string;
  bucket: string;
  /** Key prefix inside the bucket, without leading/trailing slashes ('' for the bucket root). */
  prefix?: string;
  forcePathStyle?: boolean;
  provider?: ProviderName;
  /**
   * `file`: an AWS shared-credentials (INI) file, section `profile` (default `default`);
   * `env`: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; neither: the AWS default chain.
   */
  credentials?: { file?: string; profile?: string; env?: boolean };
  objectLock?: { mode: 'governance' | 'compliance'; retainDays: number };
  retry?: { attempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  timeouts?: { connectMs?: number; idleMs?: number };
  multipart?: { partSize?: number; minPartSize?: number; concurrency?: number };
  /** The bound for get() without an explicit maxBytes. */
  defaultMaxBytes?: number;
}

const DEFAULTS = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  connectMs: 10_000,
  idleMs: 60_000,
  partSize: 16 * MiB,
  concurrency: 4,
  defaultMaxBytes: 64 * MiB,
} as const;

/** The part size for an object of `size` bytes: the preferred one, grown so the parts fit the limit. */
export function choosePartSize(
  size: number,
  limits: { maxParts: number; minPartSize: number; maxPartSize: number },
  preferred: number,
): number {
  let part = Math.max(preferred, limits.minPartSize, 1);
  if (Math.ceil(size / part) > limits.maxParts) {
    part = Math.ceil(size / limits.maxParts / MiB) * MiB;
  }
  if (part > limits.maxPartSize) {
    throw new OffsiteError(
      `object of ${size} bytes is too large: ${limits.maxParts} parts of at most ${limits.maxPartSize} bytes`,
    );
  }
  return part;
}

/** Full-jitter exponential backoff: attempt 1 waits up to base, then 2×, 4×, … capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Parses an AWS shared-credentials file's section (hand parser, bounded). */
export function parseCredentialsFile(text: string, profile: string, where: string): Credentials {
  let section: string | undefined;
  const found = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (head) {
      section = head[1];
      continue;
    }
    const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (kv && section === profile) found.set((kv[1] ?? '').toLowerCase(), (kv[2] ?? '').trim());
  }
  const accessKeyId = found.get('aws_access_key_id');
  const secretAccessKey = found.get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError(
      `offsite credentials file ${where} has no aws_access_key_id and aws_secret_access_key in [${profile}]`,
    );
  }
  const sessionToken = found.get('aws_session_token');
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
}

async function resolveCredentials(
  cfg: OffsiteStoreOptions['credentials'],
  env: NodeJS.ProcessEnv,
): Promise<Credentials | undefined> {
  if (cfg?.file !== undefined) {
    let text: string;
    try {
      const st = await stat(cfg.file);
      if (st.size > 64 * 1024) throw new ConfigError(`offsite credentials file ${cfg.file} is too large`);
      text = await readFile(cfg.file, 'utf8');
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`offsite credentials file ${cfg.file}: ${errnoCode(err) ?? String(err)}`);
    }
    return parseCredentialsFile(text, cfg.profile ?? 'default', cfg.file);
  }
  if (cfg?.env === true) {
    const accessKeyId = env['AWS_ACCESS_KEY_ID'];
    const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
    if (!accessKeyId || !secretAccessKey) {
      throw new ConfigError('offsite credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
    }
    const sessionToken = env['AWS_SESSION_TOKEN'];
    return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
  }
  return undefined; // the SDK's default chain
}

/** Builds the S3 store from the `offsite:` options; throws ConfigError on a bad combination. */
export async function resolveOffsiteStore(
  options: OffsiteStoreOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<S3Store> {
  const provider = options.provider ?? 'generic';
  const profile = PROVIDER_PROFILES[provider];
  if (options.objectLock !== undefined && !profile.objectLock) {
    throw new ConfigError(`offsite: provider ${provider} does not support per-object Object Lock retention`);
  }
  if (options.objectLock !== undefined && !(options.objectLock.retainDays > 0)) {
    throw new ConfigError('offsite: objectLock retain must be positive');
  }
  if (
    !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket) &&
    !/^[A-Za-z0-9._-]{1,255}$/.test(options.bucket)
  ) {
    throw new ConfigError(`offsite: bad bucket name ${JSON.stringify(options.bucket)}`);
  }
  const credentials = await resolveCredentials(options.credentials, env);
  return new S3Store(options, profile, credentials);
}

type Reason = { retry: boolean; text: string };

const RETRY_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  'ConditionalRequestConflict',
  'OperationAborted',
]);
const RETRY_ERRNO = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
]);

/** A body shorter than its Content-Length: retried like a reset. */
class TruncatedBody extends Error {
  constructor(got: number, want: number | undefined, why?: string) {
    super(`response body cut short: ${got} of ${want ?? '?'} bytes${why === undefined ? '' : ` (${why})`}`);
  }
}

function status(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = err.$metadata;
  if (typeof meta !== 'object' || meta === null || !('httpStatusCode' in meta)) return undefined;
  return typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

function errName(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    if ('Code' in err && typeof err.Code === 'string') return err.Code;
    if ('name' in err && typeof err.name === 'string') return err.name;
  }
  return '';
}

function isAbort(err: unknown): boolean {
  return errName(err) === 'AbortError';
}

export class S3Store implements ObjectStore {
  readonly describe: string;
  readonly profile: ProviderProfile;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly endpointText: string;
  private readonly lock: { mode: ObjectLockMode; retainMs: number } | undefined;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly partSize: number;
  private readonly minPartSize: number;
  private readonly concurrency: number;
  private readonly defaultMaxBytes: number;
  private readonly secrets: string[];

  constructor(options: OffsiteStoreOptions, profile: ProviderProfile, credentials: Credentials | undefined) {
    this.profile = profile;
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.endpointText = options.endpoint ?? `AWS ${options.region ?? 'us-east-1'}`;
    this.describe = `s3://${this.bucket}/${this.prefix} at ${this.endpointText}`;
    this.lock =
      options.objectLock === undefined
        ? undefined
        : {
            mode: options.objectLock.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE',
            retainMs: Math.round(options.objectLock.retainDays * 86_400_000),
          };
    this.attempts = Math.max(1, options.retry?.attempts ?? DEFAULTS.attempts);
    this.baseDelayMs = options.retry?.baseDelayMs ?? DEFAULTS.baseDelayMs;
    this.maxDelayMs = options.retry?.maxDelayMs ?? DEFAULTS.maxDelayMs;
    this.partSize = options.multipart?.partSize ?? DEFAULTS.partSize;
    this.minPartSize = options.multipart?.minPartSize ?? profile.minPartSize;
    this.concurrency = Math.max(1, options.multipart?.concurrency ?? DEFAULTS.concurrency);
    this.defaultMaxBytes = options.defaultMaxBytes ?? DEFAULTS.defaultMaxBytes;
    this.secrets = credentials
      ? [credentials.secretAccessKey, credentials.accessKeyId, credentials.sessionToken ?? ''].filter(
          (s) => s.length >= 4,
        )
      : [];
    // The SDK warns (several lines on stderr, once per process) that its releases after January 2027
    // need Node 22; baton pins the SDK and supports Node 20, so that is noise in a one-line CLI.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    this.client = new S3Client({
      region: options.region ?? 'us-east-1',
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? !profile.virtualHost,
      ...(credentials !== undefined ? { credentials } : {}),
      requestChecksumCalculation: profile.checksum,
      // Reads are checked by our own length check here and by the callers' sha256 / age MACs; a
      // whole-object checksum cannot validate a ranged read (moto even sends one for it).
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      requestHandler: {
        connectionTimeout: options.timeouts?.connectMs ?? DEFAULTS.connectMs,
        // An idle socket (no byte either way, also mid-body) is a TimeoutError, retried; a long
        // transfer that keeps moving is not cut.
        socketTimeout: options.timeouts?.idleMs ?? DEFAULTS.idleMs,
      },
      logger: undefined,
    });
  }

  /** Stops the HTTP agent's sockets. */
  close(): void {
    this.client.destroy();
  }

  private full(key: string): string {
    if (
      key === '' ||
      key.startsWith('/') ||
      key.split('/').some((s) => s === '..' || s === '.') ||
      hasControl(key) ||
      Buffer.byteLength(key) > 900
    ) {
      throw new OffsiteError(`bad object key ${JSON.stringify(key)}`);
    }
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  private relative(full: string): string | undefined {
    if (this.prefix === '') return full;
    return full.startsWith(`${this.prefix}/`) ? full.slice(this.prefix.length + 1) : undefined;
  }

  private scrub(text: string): string {
    let out = text.replace(/[\r\n]+/g, ' ');
    for (const s of this.secrets) out = out.split(s).join('***');
    return out.length > 300 ? `${out.slice(0, 300)}…` : out;
  }

  /** Classifies a failure: retry it, or report it (a one-line text either way). */
  private reason(err: unknown): Reason {
    if (err instanceof TruncatedBody) return { retry: true, text: err.message };
    const name = errName(err);
    const code = errnoCode(err);
    const st = status(err);
    const message = err instanceof Error ? err.message : String(err);
    const msg = this.scrub(message && message !== 'UnknownError' && message !== name ? message : '');
    const tag = [st === undefined ? undefined : String(st), name || code].filter(Boolean).join(' ');
    const text = msg ? `${tag}: ${msg}` : tag || 'unknown error';
    if (name === 'NoSuchBucket') {
      return { retry: false, text: `bucket ${this.bucket} does not exist at ${this.endpointText}` };
    }
    if (CREDENTIAL_CODES.has(name)) {
      return { retry: false, text: `credentials refused by ${this.endpointText} (${name})` };
    }
    if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
      return { retry: false, text: `no credentials for ${this.endpointText}: ${msg}` };
    }
    if (name === 'AccessDenied' || st === 403) {
      return {
        retry: false,
        text: `access denied by ${this.endpointText} (check credentials and bucket policy)`,
      };
    }
    if (code !== undefined && ['ENOTFOUND', 'ECONNREFUSED'].includes(code)) {
      return { retry: code === 'ECONNREFUSED', text: `endpoint ${this.endpointText} unreachable (${code})` };
    }
    if (RETRY_CODES.has(name) || (code !== undefined && RETRY_ERRNO.has(code))) return { retry: true, text };
    if (st !== undefined && (st >= 500 || st === 429)) return { retry: true, text };
    if (st === undefined && /socket hang up|aborted|premature close|ECONNRESET/i.test(message)) {
      return { retry: true, text };
    }
    return { retry: false, text };
  }

  /** Runs `fn` with backoff; maps the final failure to OffsiteError (or lets `passThrough` errors out). */
  private async retry<T>(
    what: string,
    fn: (attempt: number) => Promise<T>,
    passThrough: (err: unknown) => Error | undefined = () => undefined,
    signal?: AbortSignal,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        if (err instanceof OffsiteError) throw err;
        const mapped = passThrough(err);
        if (mapped !== undefined) throw mapped;
        if (isAbort(err) || signal?.aborted === true) {
          throw new OffsiteError(`${what} in ${this.describe} aborted`, { cause: err });
        }
        const r = this.reason(err);
        if (!r.retry) throw new OffsiteError(`${what} in ${this.describe} failed: ${r.text}`, { cause: err });
        if (attempt >= this.attempts) {
          throw new OffsiteError(`${what} in ${this.describe} failed after ${attempt} attempts: ${r.text}`, {
            cause: err,
          });
        }
        await sleep(backoffMs(attempt, this.baseDelayMs, this.maxDelayMs), signal);
      }
    }
  }

  private lockParams(opts: PutOptions | undefined): {
    ObjectLockMode?: ObjectLockMode;
    ObjectLockRetainUntilDate?: Date;
  } {
    if (this.lock === undefined) return {};
    return {
      ObjectLockMode: this.lock.mode,
      ObjectLockRetainUntilDate: opts?.retainUntil ?? new Date(Date.now() + this.lock.retainMs),
    };
  }

  async put(key: string, body: Uint8Array, opts?: PutOptions): Promise<void> {
    await this.send(key, () => body, body.byteLength, createHash('md5').update(body).digest(), opts);
  }

  /** One PUT; `body()` is called per attempt (a file range is streamed again, never held). */
  private async send(
    key: string,
    body: () => Uint8Array | Readable,
    length: number,
    md5: Buffer,
    opts?: PutOptions,
  ): Promise<void> {
    const full = this.full(key);
    const lock = this.lockParams(opts);
    const signal = opts?.signal;
    let ambiguous = false;
    await this.retry(
      `PUT ${key}`,
      async () => {
        try {
          await this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: full,
              Body: body(),
              ContentLength: length,
              ...(this.profile.contentMd5 ? { ContentMD5: md5.toString('base64') } : {}),
              ...(opts?.ifNoneMatch === true ? { IfNoneMatch: '*' } : {}),
              ...lock,
            }),
            signal ? { abortSignal: signal } : {},
          );
        } catch (err) {
          const st = status(err);
          // A clash after an attempt whose outcome we never heard may be our own earlier write.
          if (st === 412 && ambiguous && (await this.sameEtag(full, md5))) return;
          if (st === undefined || st >= 500) ambiguous = true;
          throw err;
        }
      },
      (err) => (status(err) === 412 ? new ObjectExistsError(key, this.describe, { cause: err }) : undefined),
      signal,
    );
  }

  /** After an attempt whose outcome is unknown: does the object already hold exactly our bytes? */
  private async sameEtag(full: string, md5: Buffer): Promise<boolean> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }));
      return h.ETag === `"${md5.toString('hex')}"`;
    } catch {
      return false;
    }
  }

  async putFile(key: string, path: string, size: number, opts?: PutOptions): Promise<void> {
    const full = this.full(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new OffsiteError(`PUT ${key}: cannot read ${path}: ${errnoCode(err) ?? String(err)}`, {
        cause: err,
      });
    }
    try {
      const before = await fh.stat();
      if (before.size !== size) {
        throw new OffsiteError(`PUT ${key}: ${path} has ${before.size} bytes, expected ${size}`);
      }
      const partSize = choosePartSize(
        size,
        {
          maxParts: this.profile.maxParts,
          minPartSize: this.minPartSize,
          maxPartSize: this.profile.maxPartSize,
        },
        this.partSize,
      );
      const unchanged = async (): Promise<void> => {
        const after = await fh.stat();
        if (
          after.size !== before.size ||
          after.mtimeMs !== before.mtimeMs ||
          after.ctimeMs !== before.ctimeMs
        ) {
          throw new OffsiteError(`PUT ${key}: ${path} changed while it was uploaded`);
        }
      };
      if (size <= partSize) {
        // streamed from the file (memory: the stream's buffer, not the object)
        const md5 = await md5OfRange(fh, 0, size, path);
        await this.send(key, () => rangeBody(fh, 0, size), size, md5, opts);
        await unchanged();
        return;
      }
      await this.multipart(key, full, fh, path, size, partSize, opts, unchanged);
    } finally {
      await fh.close();
    }
  }

  private async multipart(
    key: string,
    full: string,
    fh: FileHandle,
    path: string,
    size: number,
    partSize: number,
    opts: PutOptions | undefined,
    unchanged: () => Promise<void>,
  ): Promise<void> {
    const signal = opts?.signal;
    const sendOpts = signal ? { abortSignal: signal } : {};
    const crc = this.profile.checksum === 'WHEN_SUPPORTED';
    const created = await this.retry(
      `start multipart upload of ${key}`,
      () =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: full,
            ...(crc ? { ChecksumAlgorithm: 'CRC32' } : {}),
            ...this.lockParams(opts),
          }),
          sendOpts,
        ),
      undefined,
      signal,
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined || uploadId === '') {
      throw new OffsiteError(
        `start multipart upload of ${key} in ${this.describe}: no upload id in the reply`,
      );
    }
    try {
      const count = Math.ceil(size / partSize);
      const parts: CompletedPart[] = new Array<CompletedPart>(count);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          const index = next++;
          const offset = index * partSize;
          const length = Math.min(partSize, size - offset);
          const md5 = this.profile.contentMd5
            ? (await md5OfRange(fh, offset, length, path)).toString('base64')
            : undefined;
          const res = await this.retry(
            `PUT ${key} part ${index + 1}/${count}`,
            () =>
              this.client.send(
                new UploadPartCommand({
                  Bucket: this.bucket,
                  Key: full,
                  UploadId: uploadId,
                  PartNumber: index + 1,
                  Body: rangeBody(fh, offset, length),
                  ContentLength: length,
                  ...(md5 !== undefined ? { ContentMD5: md5 } : {}),
                  ...(crc ? { ChecksumAlgorithm: 'CRC32' } : {}),
                }),
                sendOpts,
              ),
            undefined,
            signal,
          );
          if (res.ETag === undefined) {
            throw new OffsiteError(`PUT ${key} part ${index + 1} in ${this.describe}: no ETag in the reply`);
          }
          parts[index] = {
            PartNumber: index + 1,
            ETag: res.ETag,
            ...(res.ChecksumCRC32 !== undefined ? { ChecksumCRC32: res.ChecksumCRC32 } : {}),
          };
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, count) }, () => worker()));
      await unchanged();
      await this.retry(
        `complete multipart upload of ${key}`,
        () =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: full,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
              ...(opts?.ifNoneMatch === true ? { IfNoneMatch: '*' } : {}),
            }),
            sendOpts,
          ),
        (err) =>
          status(err) === 412 ? new ObjectExistsError(key, this.describe, { cause: err }) : undefined,
        signal,
      );
    } catch (err) {
      // Best effort: a lifecycle rule for incomplete multipart uploads cleans up what this misses.
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId }))
        .catch(() => undefined);
      throw err;
    }
  }

  async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    const full = this.full(key);
    const maxBytes = opts?.maxBytes ?? this.defaultMaxBytes;
    const range = opts?.range;
    if (range !== undefined) {
      if (!(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0)) {
        throw new OffsiteError(`GET ${key}: bad range ${range.start}-${range.end}`);
      }
      if (range.end < range.start)
        throw new OffsiteError(`GET ${key}: bad range ${range.start}-${range.end}`);
      if (range.end - range.start + 1 > maxBytes) {
        throw new OffsiteError(
          `GET ${key}: range of ${range.end - range.start + 1} bytes exceeds ${maxBytes}`,
        );
      }
    }
    return this.retry(
      `GET ${key}`,
      async () => {
        const res = await this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: full,
            ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        );
        const body = res.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
        const length = res.ContentLength;
        if (body === undefined) throw new TruncatedBody(0, length ?? 0);
        if (length !== undefined && length > maxBytes) {
          body.destroy?.();
          throw new OffsiteError(
            `GET ${key} from ${this.describe}: ${length} bytes exceed the bound of ${maxBytes}`,
          );
        }
        // With a Content-Length the body is copied into one buffer as it arrives (not held twice).
        const into = length === undefined ? undefined : Buffer.allocUnsafe(length);
        const chunks: Uint8Array[] = [];
        let got = 0;
        try {
          for await (const chunk of body) {
            if (got + chunk.byteLength > maxBytes) {
              body.destroy?.();
              throw new OffsiteError(`GET ${key} from ${this.describe}: more than ${maxBytes} bytes`);
            }
            if (into !== undefined && got + chunk.byteLength > into.length) {
              // more than its Content-Length said: as a short body, a bad reply (retried)
              body.destroy?.();
              throw new TruncatedBody(got + chunk.byteLength, length);
            }
            if (into !== undefined) into.set(chunk, got);
            else chunks.push(chunk);
            got += chunk.byteLength;
          }
        } catch (err) {
          if (err instanceof OffsiteError) throw err;
          throw new TruncatedBody(got, length, this.reason(err).text);
        }
        if (length !== undefined && got !== length) throw new TruncatedBody(got, length);
        const out = into ?? Buffer.concat(chunks, got);
        return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      },
      (err) =>
        errName(err) === 'NoSuchKey' || status(err) === 404
          ? errName(err) === 'NoSuchBucket'
            ? undefined
            : new ObjectMissingError(key, this.describe, { cause: err })
          : status(err) === 416
            ? new OffsiteError(`GET ${key}: range ${range?.start}-${range?.end} is outside the object`)
            : undefined,
    );
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const full = this.full(key);
    const notFound = Symbol('not found');
    const res = await this.retry(`HEAD ${key}`, async () => {
      try {
        return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }));
      } catch (err) {
        // HEAD carries no body: a 404 cannot tell a missing key from a missing bucket.
        if (status(err) === 404 && errName(err) !== 'NoSuchBucket') return notFound;
        throw err;
      }
    });
    if (res === notFound) return undefined;
    return { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0) };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (hasControl(prefix) || prefix.startsWith('/')) {
      throw new OffsiteError(`bad list prefix ${JSON.stringify(prefix)}`);
    }
    const fullPrefix = this.prefix === '' ? prefix : `${this.prefix}/${prefix}`;
    let token: string | undefined;
    do {
      const page = await this.retry(`LIST ${prefix}`, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        const rel = o.Key === undefined ? undefined : this.relative(o.Key);
        if (rel === undefined || rel === '') continue;
        yield { key: rel, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      const nextToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      if (page.IsTruncated === true && (nextToken === undefined || nextToken === token)) {
        throw new OffsiteError(
          `LIST ${prefix} in ${this.describe}: truncated listing without a usable token`,
        );
      }
      token = nextToken;
    } while (token !== undefined);
  }

  async delete(key: string): Promise<'deleted' | 'retained'> {
    const full = this.full(key);
    const versions = await this.versionsOf(key, full);
    if (versions === undefined) {
      await this.retry(`DELETE ${key}`, () =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full })),
      );
      return 'deleted';
    }
    let retained = false;
    for (const versionId of versions) {
      const outcome = await this.retry(`DELETE ${key} version ${versionId}`, async () => {
        try {
          await this.client.send(
            new DeleteObjectCommand({ Bucket: this.bucket, Key: full, VersionId: versionId }),
          );
          return 'deleted' as const;
        } catch (err) {
          if (status(err) === 403 && (await this.isLocked(full, versionId))) return 'retained' as const;
          throw err;
        }
      });
      if (outcome === 'retained') retained = true;
    }
    return retained ? 'retained' : 'deleted';
  }

  /** Every version id and delete marker of exactly `full`; undefined when the store has no versions API. */
  private async versionsOf(key: string, full: string): Promise<string[] | undefined> {
    const ids: string[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const page = await this.retry(`LIST versions of ${key}`, async () => {
        try {
          return await this.client.send(
            new ListObjectVersionsCommand({
              Bucket: this.bucket,
              Prefix: full,
              ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
              ...(versionMarker !== undefined ? { VersionIdMarker: versionMarker } : {}),
            }),
          );
        } catch (err) {
          if (
            ['NotImplemented', 'MethodNotAllowed'].includes(errName(err)) ||
            [405, 501].includes(status(err) ?? 0)
          ) {
            return undefined;
          }
          throw err;
        }
      });
      if (page === undefined) return undefined;
      for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (v.Key === full && v.VersionId !== undefined) ids.push(v.VersionId);
      }
      if (page.IsTruncated !== true) return ids;
      if (page.NextKeyMarker === keyMarker && page.NextVersionIdMarker === versionMarker) {
        throw new OffsiteError(
          `LIST versions of ${key} in ${this.describe}: truncated listing without a marker`,
        );
      }
      keyMarker = page.NextKeyMarker;
      versionMarker = page.NextVersionIdMarker;
    }
  }

  /**
   * Is this version under a retention period or legal hold (why a delete got 403)? Read from HEAD,
   * which carries the lock headers given s3:GetObjectRetention (moto has no GET ?retention).
   */
  private async isLocked(full: string, versionId: string): Promise<boolean> {
    try {
      const h = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: full, VersionId: versionId }),
      );
      const until = h.ObjectLockRetainUntilDate;
      return (until !== undefined && until.getTime() > Date.now()) || h.ObjectLockLegalHoldStatus === 'ON';
    } catch {
      return false;
    }
  }

  async extendRetention(key: string, until: Date): Promise<void> {
    const lock = this.lock;
    if (lock === undefined) return;
    const full = this.full(key);
    const head = await this.retry(
      `HEAD ${key}`,
      () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full })),
      (err) => (status(err) === 404 ? new ObjectMissingError(key, this.describe, { cause: err }) : undefined),
    );
    const current = head.ObjectLockRetainUntilDate;
    if (current !== undefined && current.getTime() >= until.getTime()) return; // never shorten
    const versionId = head.VersionId;
    await this.retry(`extend retention of ${key}`, () =>
      this.client.send(
        new PutObjectRetentionCommand({
          Bucket: this.bucket,
          Key: full,
          ...(versionId !== undefined ? { VersionId: versionId } : {}),
          Retention: { Mode: head.ObjectLockMode ?? lock.mode, RetainUntilDate: until },
        }),
      ),
    );
  }
}

/** MD5 of `length` bytes of the file from `offset`, streamed; a file that shrank is refused. */
async function md5OfRange(fh: FileHandle, offset: number, length: number, path: string): Promise<Buffer> {
  const h = createHash('md5');
  let got = 0;
  if (length > 0)
    for await (const c of fh.createReadStream({
      start: offset,
      end: offset + length - 1,
      autoClose: false,
    })) {
      h.update(c as Buffer);
      got += (c as Buffer).length;
    }
  if (got !== length) throw new OffsiteError(`${path} shrank while it was uploaded`);
  return h.digest();
}

/** A fresh stream of the range (one per attempt: a retry reads it again). */
function rangeBody(fh: FileHandle, offset: number, length: number): Uint8Array | Readable {
  if (length === 0) return new Uint8Array(0);
  return fh.createReadStream({ start: offset, end: offset + length - 1, autoClose: false });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
