/**
 * What the offsite e2e tests share: a sink config with an `offsite:` block for a bucket (moto or
 * s3rver), verified sink generations built by the source's own builder, the CLI run with the bucket's
 * credentials, and raw bucket listings for assertions.
 *
 *   const fx = new OffsiteFixture(root, moto, recipient);
 *   const s = await fx.setup({ objectLock: '5s' });
 *   const g = await addSinkGeneration(s.store, mirror);
 *   const p = await offsiteRun(s, ['push', '--json']);
 */
import assert from 'node:assert/strict';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { loadNameMaps } from '../../src/adapters/accounts.js';
import { createLogger } from '../../src/adapters/log.js';
import type { RunResult } from '../../src/adapters/run.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { buildGeneration } from '../../src/source/build-generation.js';
import { runProcess } from '../../src/adapters/run.js';
import { runBaton, show } from './cli.js';
import { makeSinkStore } from './sink-store.js';

/** The bucket a setup points at (moto_server or s3rver). */
export interface OffsiteBucket {
  endpoint: string;
  region?: string;
  bucket: string;
  env: NodeJS.ProcessEnv;
}

export interface OffsiteSetup {
  dir: string;
  config: string;
  store: string;
  stateDir: string;
  prefix: string;
  env: NodeJS.ProcessEnv;
}

export interface OffsiteSetupOptions {
  /** default: encrypted to the fixture's recipient (when it has one) */
  encrypted?: boolean;
  packSize?: string;
  /** `retain` of a governance Object Lock, e.g. `5s` */
  objectLock?: string;
  generations?: number;
  bucket?: string;
  endpoint?: string;
  /** more lines inside `offsite:` (indented two spaces) */
  extra?: string;
  /** lines at the top level of the config (e.g. `alerts:`) */
  top?: string;
}

/** Makes sink setups (store, state dir, config) under `root`, each with its own bucket prefix. */
export class OffsiteFixture {
  private n = 0;
  constructor(
    private readonly root: string,
    private readonly bucket: OffsiteBucket,
    private readonly recipient?: string,
  ) {}

  async setup(opts: OffsiteSetupOptions = {}): Promise<OffsiteSetup> {
    const dir = join(this.root, `s${++this.n}`);
    const store = await makeSinkStore(join(dir, 'store'));
    const stateDir = join(dir, 'state');
    const prefix = `t${this.n}`;
    const config = join(dir, 'sink.yaml');
    const encrypted = opts.encrypted ?? this.recipient !== undefined;
    await writeFile(
      config,
      `store: ${store}
stateDir: ${stateDir}
${opts.top ?? ''}sources:
  - name: shop
    host: 127.0.0.1
    knownHosts: ${join(dir, 'known_hosts')}
    streams:
      data: { user: nobody, identity: ${join(dir, 'key')}, generations: 5 }
${offsiteBlock(this.bucket, { ...opts, prefix, recipient: encrypted ? this.recipient : undefined })}`,
    );
    return { dir, config, store, stateDir, prefix, env: { ...this.bucket.env } };
  }
}

/** The `offsite:` block of a sink config for `bucket`. */
export function offsiteBlock(
  bucket: OffsiteBucket,
  o: OffsiteSetupOptions & { prefix: string; recipient?: string | undefined; afterPull?: boolean },
): string {
  const lines = [
    'offsite:',
    `  endpoint: ${o.endpoint ?? bucket.endpoint}`,
    `  region: ${bucket.region ?? 'us-east-1'}`,
    `  bucket: ${o.bucket ?? bucket.bucket}`,
    `  prefix: ${o.prefix}`,
    '  provider: generic',
    '  forcePathStyle: true',
    '  parallel: 2',
    `  packSize: ${o.packSize ?? '4M'}`,
  ];
  if (o.recipient !== undefined) lines.push('  encryption:', `    recipients: [${o.recipient}]`);
  if (o.objectLock !== undefined) lines.push(`  objectLock: { mode: governance, retain: ${o.objectLock} }`);
  if (o.generations !== undefined) lines.push(`  generations: ${o.generations}`);
  if (o.afterPull !== undefined) lines.push(`  afterPull: ${String(o.afterPull)}`);
  return `${lines.join('\n')}\n${o.extra ?? ''}`;
}

const log = createLogger({ format: 'json', level: 'error' });
let idSeq = 0;

/** A generation id later than every one this process made before. */
export function nextGenerationId(): string {
  return formatGenerationId(new Date(Date.UTC(2026, 10, 1, 6, 0, idSeq++)));
}

/**
 * A verified sink generation of `mirror` (its `/srv/app`) in `<store>/shop/data`, hard-linked to
 * `previous`, as a pull leaves it; `baton verify --deep` passes on it.
 */
export async function addSinkGeneration(
  store: string,
  mirror: string,
  previous?: { id: string; dir: string },
  id = nextGenerationId(),
): Promise<{ id: string; dir: string }> {
  const parent = join(store, 'shop', 'data');
  await mkdir(parent, { recursive: true });
  const built = await buildGeneration({
    source: 'shop',
    stream: 'data',
    id,
    mirror,
    paths: ['/srv/app'],
    parent,
    owner: { name: 'root', uid: 0, gid: 0, home: '/root' },
    names: await loadNameMaps(),
    previous,
    appStoppedAt: new Date(),
    appStartedAt: new Date(),
    log,
  });
  await rename(built.work, built.dir);
  const v = await runBaton(['verify', '--deep', built.dir]);
  assert.equal(v.code, 0, show(v));
  return { id, dir: built.dir };
}

/** `baton offsite <args> --config <setup's config>` with the bucket's credentials. */
export function offsiteRun(
  s: OffsiteSetup,
  args: readonly string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<RunResult> {
  return runBaton(['offsite', ...args, '--config', s.config], { env: { ...s.env, ...extraEnv } });
}

/** The lines baton prints for the user on stderr (log lines aside). */
export function userLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('baton:') || (l !== '' && !/^\d{4}-\d\d-\d\dT.* (INFO|WARN|ERROR) /.test(l)));
}

/** Every key under `<prefix>/` of the bucket, raw. */
export async function bucketKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key);
    token = r.NextContinuationToken;
  } while (token);
  return out.sort();
}

export async function getRaw(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from((await r.Body?.transformToByteArray()) ?? []);
}

/** A new age identity file (age-keygen); resolves with its public recipient. */
export async function ageIdentity(file: string): Promise<string> {
  assert.equal((await runProcess(['age-keygen', '-o', file], {})).code, 0);
  const r = await runProcess(['age-keygen', '-y', file], { captureStdout: true });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/**
 * A tree listing (test/helpers/listing.ts) without its mtime column: a sink generation's tree/ has the
 * builder's mtimes (to the microsecond); the manifest's, to the nanosecond, come back with `baton restore`.
 */
export function withoutMtimes(listing: string): string {
  return listing
    .split('\n')
    .map((l) =>
      l
        .split(' ')
        .filter((_f, i) => i !== 6)
        .join(' '),
    )
    .join('\n');
}
