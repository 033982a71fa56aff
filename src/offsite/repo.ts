import { hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Decrypter, Encrypter, identityToRecipient } from 'age-encryption';
import { ConfigError } from '../errors.js';
import { writeFileAtomic, mkdirp } from '../adapters/fsx.js';
import { CONFIG_KEY } from './layout.js';
import { ObjectExistsError, ObjectMissingError, OffsiteError, type ObjectStore } from './object-store.js';
import {
  formatRepoConfig,
  parseRepoConfig,
  RecordError,
  REPO_CONFIG_MAX_BYTES,
  type RepoConfig,
} from '../core/offsite-records.js';
import {
  BlobOpener,
  BlobSealer,
  blobIdFromSha256,
  createMasterKey,
  deriveIdKey,
  unwrapMasterKey,
  wrapMasterKey,
} from './crypto.js';
import { DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker.js';

/**
 * The repository as the engine uses it: its config, how blobs are named, sealed and opened (the
 * crypto itself is src/offsite/crypto.ts). Pack indexes are sealed to the recipients and to an
 * "index recipient" derived from the master key, so the sink (which keeps the master key to name
 * blobs, never an identity of the recipients) can rebuild its local blob index from the bucket
 * without being able to read any data.
 */
export interface Repo {
  readonly config: RepoConfig;
  readonly encrypted: boolean;
  /** blobs and generation objects can be opened (plain, or an identity was given) */
  readonly canOpen: boolean;
  readonly chunker: ChunkerParams;
  /** a blob's id from the sha256 (hex) of its plain bytes */
  blobId(plainSha256: string): string;
  /** a sealer for one pack or one generation's objects (undefined: plain repository) */
  newSealer(): Promise<BlobSealer | undefined>;
  /** plain bytes of a sealed blob or object; throws a one-line JobError naming `what` */
  open(sealed: Uint8Array, what: string): Promise<Uint8Array>;
  /** the same, for an object arriving piece by piece (bounded memory; authenticated chunk by chunk) */
  openStream(source: AsyncIterable<Uint8Array>, what: string): AsyncIterable<Uint8Array>;
  sealIndex(plain: Uint8Array): Promise<Uint8Array>;
  openIndex(sealed: Uint8Array, what: string): Promise<Uint8Array>;
}

// BIP-173 bech32, for the index identity derived from the master key (age's AGE-SECRET-KEY-1… form).
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
function bech32Polymod(values: number[]): number {
  const G = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const b = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((b >>> i) & 1) chk ^= G[i] ?? 0;
  }
  return chk;
}
function bech32Encode(hrp: string, data: Uint8Array): string {
  const words: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of data) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      words.push((acc >>> bits) & 31);
    }
  }
  if (bits > 0) words.push((acc << (5 - bits)) & 31);
  const h = hrp.toLowerCase();
  const codes = Array.from(Buffer.from(h, 'latin1'));
  const expand = [...codes.map((c) => c >> 5), 0, ...codes.map((c) => c & 31)];
  const pm = bech32Polymod([...expand, ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const check = [0, 1, 2, 3, 4, 5].map((i) => (pm >>> (5 * (5 - i))) & 31);
  return `${h}1${[...words, ...check].map((w) => CHARSET[w]).join('')}`;
}

/** The age identity (AGE-SECRET-KEY-1…) that opens pack indexes: HKDF(master key, "index identity"). */
function indexIdentity(master: Uint8Array): string {
  const k = new Uint8Array(
    hkdfSync('sha256', master, new Uint8Array(0), 'baton offsite index identity v1', 32),
  );
  return bech32Encode('age-secret-key-', k).toUpperCase();
}

async function makeRepo(
  config: RepoConfig,
  opts: { master?: Uint8Array; recipients?: readonly string[]; identities?: readonly string[] },
): Promise<Repo> {
  const chunker: ChunkerParams = config.chunker;
  if (!config.encrypted) {
    return {
      config,
      encrypted: false,
      canOpen: true,
      chunker,
      blobId: (h) => blobIdFromSha256(undefined, h),
      newSealer: () => Promise.resolve(undefined),
      open: (s) => Promise.resolve(s),
      openStream: (s) => s,
      sealIndex: (p) => Promise.resolve(p),
      openIndex: (s) => Promise.resolve(s),
    };
  }
  const idKey = opts.master ? deriveIdKey(opts.master) : undefined;
  const ixIdentity = opts.master ? indexIdentity(opts.master) : undefined;
  const ixRecipient = ixIdentity ? await identityToRecipient(ixIdentity) : undefined;
  const opener = opts.identities?.length ? new BlobOpener(opts.identities) : undefined;
  const needRecipients = (): readonly string[] => {
    if (!opts.recipients?.length) throw new OffsiteError('no encryption recipients configured');
    return opts.recipients;
  };
  return {
    config,
    encrypted: true,
    canOpen: opener !== undefined,
    chunker,
    blobId: (h) => {
      if (!idKey) throw new OffsiteError('the repository key is not available: blob ids cannot be computed');
      return blobIdFromSha256(idKey, h);
    },
    newSealer: () => BlobSealer.create(needRecipients()),
    open: (s, what) => {
      if (!opener) throw new OffsiteError(`${what} is encrypted: pass the age identity with --identity FILE`);
      return opener.open(s, what);
    },
    openStream: (s, what) => {
      if (!opener) throw new OffsiteError(`${what} is encrypted: pass the age identity with --identity FILE`);
      return opener.openStream(s, what);
    },
    sealIndex: async (p) => {
      const e = new Encrypter();
      for (const r of needRecipients()) e.addRecipient(r);
      if (ixRecipient) e.addRecipient(ixRecipient);
      return e.encrypt(p);
    },
    openIndex: async (s, what) => {
      const d = new Decrypter();
      if (ixIdentity) d.addIdentity(ixIdentity);
      for (const i of opts.identities ?? []) d.addIdentity(i);
      try {
        return await d.decrypt(s);
      } catch (e) {
        throw new OffsiteError(
          `${what}: cannot decrypt it (${e instanceof Error ? e.message : String(e)}): changed, or not of this repository`,
        );
      }
    },
  };
}

async function readRepoConfig(store: ObjectStore): Promise<RepoConfig | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(CONFIG_KEY, { maxBytes: REPO_CONFIG_MAX_BYTES });
  } catch (e) {
    if (e instanceof ObjectMissingError) return undefined;
    throw e;
  }
  try {
    return parseRepoConfig(bytes);
  } catch (e) {
    if (e instanceof RecordError) throw new OffsiteError(`${store.describe}: ${e.message}`);
    throw e;
  }
}

const keyLine = (config: RepoConfig, master: Uint8Array) =>
  `${config.id} ${Buffer.from(master).toString('hex')}\n`;

/** The master key in `<stateDir>/master.key` when it is this repository's; undefined otherwise. */
async function readLocalKey(keyFile: string, config: RepoConfig): Promise<Uint8Array | undefined> {
  const local = await readFile(keyFile, 'utf8').catch(() => undefined);
  const m = local === undefined ? undefined : /^([0-9a-f]{32,64}) ([0-9a-f]{64})\n?$/.exec(local);
  return m?.[1] === config.id && m[2] ? Buffer.from(m[2], 'hex') : undefined;
}

/**
 * The repository for a push: its config (created by the first push, written once with
 * If-None-Match), and the master key kept in the sink state dir (a push names blobs with it; the
 * bucket holds it only encrypted to the recipients). A lost local key is taken from the bucket
 * with `identities` (`offsite push --identity FILE`, once).
 */
export async function openRepoForPush(
  store: ObjectStore,
  opts: { recipients: string[] | undefined; stateDir: string; identities?: string[] | undefined },
): Promise<Repo> {
  const keyFile = join(opts.stateDir, 'master.key');
  let config = await readRepoConfig(store);
  if (!config) {
    const encrypted = opts.recipients !== undefined;
    const master = createMasterKey();
    const fresh: RepoConfig = {
      version: 1,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      chunker: { ...DEFAULT_CHUNKER_PARAMS },
      encrypted,
      ...(encrypted ? { keys: await wrapMasterKey(master, opts.recipients ?? []) } : {}),
    };
    if (encrypted) {
      await mkdirp(opts.stateDir, 0o700);
      await writeFileAtomic(keyFile, keyLine(fresh, master), 0o600);
    }
    try {
      await store.put(CONFIG_KEY, Buffer.from(formatRepoConfig(fresh)), { ifNoneMatch: true });
      config = fresh;
    } catch (e) {
      if (!(e instanceof ObjectExistsError)) throw e;
      config = await readRepoConfig(store);
      if (!config)
        throw new OffsiteError(`${store.describe}: the repository config vanished while it was created`);
    }
  }
  if (config.encrypted !== (opts.recipients !== undefined))
    throw new ConfigError(
      `${store.describe}: the repository is ${config.encrypted ? 'encrypted' : 'plain'} but offsite.encryption is ${opts.recipients ? 'set' : 'not set'}`,
      { step: 'offsite' },
    );
  if (!config.encrypted) return makeRepo(config, {});
  let master = await readLocalKey(keyFile, config);
  if (!master) {
    if (!opts.identities)
      throw new ConfigError(
        `the key of ${store.describe} is not in ${keyFile}: run \`baton offsite push --identity FILE\` once with the age identity`,
        { step: 'offsite' },
      );
    master = await unwrapMasterKey(config.keys ?? '', opts.identities, 'the identity file');
    await mkdirp(opts.stateDir, 0o700);
    await writeFileAtomic(keyFile, keyLine(config, master), 0o600);
  }
  return makeRepo(config, { master, recipients: opts.recipients ?? [] });
}

/**
 * The repository for reading (restore, verify, prune): config + identities. Without identities an
 * encrypted repository can be listed and checked for presence only.
 */
export async function openRepoForRead(
  store: ObjectStore,
  identities: string[] | undefined,
  identitySource = 'the identity file',
  /** the sink state dir of this repository: its copy of the master key reads commits and indexes */
  stateDir?: string,
): Promise<Repo> {
  const config = await readRepoConfig(store);
  if (!config) throw new OffsiteError(`${store.describe}: no baton repository here (no config object)`);
  if (!config.encrypted) return makeRepo(config, {});
  if (identities) {
    const master = await unwrapMasterKey(config.keys ?? '', identities, identitySource);
    return makeRepo(config, { master, identities });
  }
  if (stateDir !== undefined) {
    const master = await readLocalKey(join(stateDir, 'master.key'), config);
    if (master) return makeRepo(config, { master });
  }
  return makeRepo(config, {});
}
