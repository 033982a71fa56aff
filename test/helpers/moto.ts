/**
 * A real S3 API for tests: moto_server (moto 5.x) on a free 127.0.0.1 port, one process per call,
 * objects in memory, with a bucket created with Object Lock (which turns versioning on). When
 * moto_server is missing the start FAILS with a line saying how to install it — it never skips.
 *
 * `rejectCredentials: true` turns on moto's IAM authentication once the bucket exists (its
 * INITIAL_NO_AUTH_ACTION_COUNT), so every later request with the test keys is refused as
 * InvalidAccessKeyId: the "wrong credentials" case on a server that otherwise works.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer, connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { OffsiteStoreOptions } from '../../src/offsite/s3-store.js';

export interface MotoOptions {
  /** The bucket created at start (default `baton-test`). */
  bucket?: string;
  /** Create it with Object Lock enabled (default true). */
  objectLock?: boolean;
  /** moto's minimum multipart part size (S3_UPLOAD_PART_MIN_SIZE; default 5 MiB as on AWS). */
  partMinSize?: number;
  /** moto's page size for listings the client does not size (MOTO_S3_DEFAULT_MAX_KEYS; default 1000). */
  listPageSize?: number;
  /** See the module comment. */
  rejectCredentials?: boolean;
}

export interface MotoServer {
  endpoint: string;
  port: number;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The environment to hand resolveOffsiteStore with the storeOptions (`credentials: { env: true }`). */
  env: NodeJS.ProcessEnv;
  /** Store options for the bucket (path style, generic profile unless `extra` says otherwise). */
  storeOptions(extra?: Partial<OffsiteStoreOptions>): OffsiteStoreOptions;
  /** A raw SDK client for assertions the ObjectStore interface does not offer. */
  client(): S3Client;
  createBucket(name: string, objectLock: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** moto_server's path: $MOTO_SERVER, then $PATH, then the pyenv shim of this machine's image. */
export function findMotoServer(): string {
  const candidates = [
    process.env['MOTO_SERVER'],
    ...(process.env['PATH'] ?? '').split(delimiter).map((d) => (d ? join(d, 'moto_server') : undefined)),
    '/root/.pyenv/shims/moto_server',
  ];
  for (const c of candidates) {
    if (c === undefined || c === '') continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(
    'moto_server not found (set MOTO_SERVER or install it: pip install "moto[server]==5.2.1"); the offsite tests need it',
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMoto(opts: MotoOptions = {}): Promise<MotoServer> {
  const bin = findMotoServer();
  const bucket = opts.bucket ?? 'baton-test';
  const region = 'us-east-1';
  const credentials = {
    accessKeyId: 'AKIAMOTOTESTKEY00001',
    secretAccessKey: 'moto-test-secret-do-not-log-0001',
  };
  let child: ChildProcess | undefined;
  let stderr = '';
  let port = 0;
  for (let tries = 0; tries < 3 && child === undefined; tries++) {
    port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      S3_UPLOAD_PART_MIN_SIZE: String(opts.partMinSize ?? 5 * 1024 * 1024),
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_DEFAULT_REGION: region,
      MOTO_S3_DEFAULT_MAX_KEYS: String(opts.listPageSize ?? 1000),
    };
    // One action: CreateBucket. Everything after it is authenticated against moto's (empty) IAM.
    if (opts.rejectCredentials === true) env['INITIAL_NO_AUTH_ACTION_COUNT'] = '1';
    const c = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    let exited = false;
    c.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline && !(await canConnect(port))) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!exited && (await canConnect(port))) child = c;
    else {
      killGroup(c);
      if (!/address already in use/i.test(stderr) && tries === 2) {
        throw new Error(
          `moto_server did not start on 127.0.0.1:${port}: ${stderr.trim().split('\n').pop() ?? ''}`,
        );
      }
    }
  }
  if (child === undefined) throw new Error(`moto_server did not start: ${stderr}`);
  const proc = child;
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  const makeClient = (): S3Client => {
    const c = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    clients.push(c);
    return c;
  };
  const server: MotoServer = {
    endpoint,
    port,
    bucket,
    region,
    credentials,
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
    storeOptions: (extra = {}) => ({
      endpoint,
      region,
      bucket,
      prefix: 'baton',
      forcePathStyle: true,
      provider: 'generic',
      credentials: { env: true },
      ...extra,
    }),
    client: makeClient,
    async createBucket(name, objectLock) {
      await makeClient().send(
        new CreateBucketCommand({
          Bucket: name,
          ...(objectLock ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      );
    },
    async stop() {
      for (const c of clients) c.destroy();
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      killGroup(proc, 'SIGTERM');
      const t = setTimeout(() => killGroup(proc, 'SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    },
  };
  try {
    await server.createBucket(bucket, opts.objectLock ?? true);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (c.pid === undefined) return;
  try {
    process.kill(-c.pid, signal);
  } catch {
    // already gone
  }
}
