/**
 * The offsite benchmark's world (bench/offsite.ts): one moto_server with one plain bucket that both
 * tools write to (baton under `baton/`, restic under `restic/`), sink generations built by the
 * source's own builder (as test/e2e/offsite.test.ts does), a sink config with an `offsite:` block,
 * an age identity, a restic repository; and the measured steps of each tool.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { loadNameMaps } from '../src/adapters/accounts.js';
import { createLogger } from '../src/adapters/log.js';
import { buildGeneration } from '../src/source/build-generation.js';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../src/core/store-marker.js';
import { startMoto, type MotoServer } from '../test/helpers/moto.js';
import { baton } from './env.js';
import { measureOk, runOk, type Measured } from './measure.js';

export const SOURCE = 'bench';
export const STREAM = 'data';
/** the configured path of the stream: the app tree lives under `<mirror>/srv/app` */
export const APP_PATH = '/srv/app';
const BUCKET = 'offsite-bench';

export interface OffsiteWorld {
  root: string;
  moto: MotoServer;
  bucket: string;
  store: string;
  /** `<store>/bench/data` */
  stream: string;
  config: string;
  identity: string;
  /** restic's repository, password and cache, and the S3 keys */
  resticEnv: NodeJS.ProcessEnv;
  batonEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export async function createWorld(root: string, packSize: string): Promise<OffsiteWorld> {
  const moto = await startMoto({ objectLock: false });
  try {
    // a bucket without Object Lock (so no versions) for both tools: restic does not send Content-MD5
    await moto.createBucket(BUCKET, false);
    const store = join(root, 'sink-store');
    await mkdir(store, { recursive: true, mode: 0o750 });
    await writeFile(join(store, STORE_MARKER), STORE_MARKER_CONTENT, { mode: 0o644 });
    const identity = join(root, 'identity.txt');
    await runOk('age-keygen', ['age-keygen', '-o', identity]);
    const recipient = (await runOk('age-keygen -y', ['age-keygen', '-y', identity])).stdout.trim();
    const config = join(root, 'sink.yaml');
    await writeFile(
      config,
      stringify({
        store,
        stateDir: join(root, 'sink-state'),
        sources: [
          {
            name: SOURCE,
            host: '127.0.0.1',
            knownHosts: join(root, 'known_hosts'),
            streams: { data: { user: 'nobody', identity: join(root, 'key'), generations: 50 } },
          },
        ],
        offsite: {
          endpoint: moto.endpoint,
          region: moto.region,
          bucket: BUCKET,
          prefix: 'baton',
          provider: 'generic',
          forcePathStyle: true,
          packSize,
          encryption: { recipients: [recipient] },
        },
      }),
    );
    const keys = { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId };
    const s3Env = { ...keys, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey };
    return {
      root,
      moto,
      bucket: BUCKET,
      store,
      stream: join(store, SOURCE, STREAM),
      config,
      identity,
      batonEnv: { ...process.env, ...s3Env },
      resticEnv: {
        ...process.env,
        ...s3Env,
        RESTIC_REPOSITORY: `s3:${moto.endpoint}/${BUCKET}/restic`,
        RESTIC_PASSWORD: 'offsite-bench-password',
        RESTIC_CACHE_DIR: join(root, 'restic-cache'),
      },
      stop: () => moto.stop(),
    };
  } catch (e) {
    await moto.stop();
    throw e;
  }
}

/** `-o s3.bucket-lookup=path`: moto on a loopback port has no virtual-host names. */
export const RESTIC_S3 = ['-o', 's3.bucket-lookup=path'];

export async function resticInit(w: OffsiteWorld): Promise<void> {
  await runOk('restic init', ['restic', ...RESTIC_S3, 'init'], { env: w.resticEnv });
}

/** Bytes and objects under `prefix/` in the bucket, listed through the S3 API. */
export async function bucketBytes(
  w: OffsiteWorld,
  prefix: string,
): Promise<{ bytes: number; objects: number }> {
  const client = w.moto.client();
  let bytes = 0;
  let objects = 0;
  let token: string | undefined;
  do {
    const r = await client.send(
      new ListObjectsV2Command({ Bucket: w.bucket, Prefix: `${prefix}/`, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) {
      bytes += o.Size ?? 0;
      objects++;
    }
    token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
  } while (token !== undefined);
  return { bytes, objects };
}

let idSeq = 0;
/** Generation ids one minute apart from a fixed start: the same names in every run. */
export function nextId(): string {
  const iso = new Date(Date.UTC(2026, 10, 1, 6, idSeq++, 0)).toISOString();
  return `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

export interface SinkGeneration {
  id: string;
  dir: string;
}

/**
 * A sink generation of `<mirror>/srv/app` in the sink store, hard-linked to `previous` where
 * unchanged: the source's builder, as a pull would publish it (verify by hash is the pull's job;
 * the builder hashed every file it wrote).
 */
export async function addGeneration(
  w: OffsiteWorld,
  mirror: string,
  previous: SinkGeneration | undefined,
): Promise<SinkGeneration> {
  await mkdir(w.stream, { recursive: true });
  const id = nextId();
  const built = await buildGeneration({
    source: SOURCE,
    stream: STREAM,
    id,
    mirror,
    paths: [APP_PATH],
    parent: w.stream,
    owner: { name: 'root', uid: 0, gid: 0, home: '/root' },
    names: await loadNameMaps(),
    previous,
    appStoppedAt: new Date(),
    appStartedAt: new Date(),
    log: createLogger({ format: 'json', level: 'error' }),
  });
  await rename(built.work, built.dir);
  return { id, dir: built.dir };
}

const LONG = { timeoutMs: 4 * 3600_000 };

export async function batonPush(w: OffsiteWorld): Promise<Measured> {
  await runOk('sync', ['sync']);
  return measureOk('baton offsite push', baton('offsite', 'push', '--config', w.config, '--json'), {
    env: w.batonEnv,
    ...LONG,
  });
}

/**
 * restic backs up the generation directory under one fixed path (`<root>/restic-view`, a rename of
 * the generation, so inodes, mtimes and ctimes stay): restic finds its parent snapshot by path, and
 * this is its best case (a new path each day would make it re-read every file).
 */
export async function resticBackup(w: OffsiteWorld, g: SinkGeneration): Promise<Measured> {
  const view = join(w.root, 'restic-view');
  await rename(g.dir, view);
  try {
    await runOk('sync', ['sync']);
    return await measureOk('restic backup', ['restic', ...RESTIC_S3, 'backup', '--quiet', view], {
      env: w.resticEnv,
      ...LONG,
    });
  } finally {
    await rename(view, g.dir);
  }
}

export async function batonRestore(w: OffsiteWorld, id: string, to: string): Promise<Measured> {
  await runOk('sync', ['sync']);
  return measureOk(
    'baton offsite restore',
    baton(
      'offsite',
      'restore',
      `${SOURCE}/${STREAM}`,
      id,
      '--to',
      to,
      '--identity',
      w.identity,
      '--config',
      w.config,
    ),
    { env: w.batonEnv, ...LONG },
  );
}

export async function resticRestore(w: OffsiteWorld, to: string): Promise<Measured> {
  await runOk('sync', ['sync']);
  return measureOk('restic restore', ['restic', ...RESTIC_S3, 'restore', 'latest', '--target', to], {
    env: w.resticEnv,
    ...LONG,
  });
}

/** Flushes the restored files too: both tools' restores end when the bytes are durable. */
export async function flush(dir: string): Promise<number> {
  const m = await measureOk('sync -f', ['sync', '-f', dir]);
  return m.wallMs;
}
