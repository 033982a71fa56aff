import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { loadNameMaps } from '../../src/adapters/accounts.js';
import { createLogger, recentLogLines } from '../../src/adapters/log.js';
import { loadSinkConfig } from '../../src/config/load.js';
import { buildGeneration } from '../../src/source/build-generation.js';
import { pushAfterPull } from '../../src/offsite/after-pull.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

// offsite.afterPull: the function `baton sink pull` calls at its end (after its acks), run with a real
// sink config, a real verified sink generation, moto_server as the bucket and a real SMTP server for
// the alert. (A full `sink pull` over sshd is covered elsewhere; here only what it hands over: its
// per-source outcomes.)
const NEEDS_ROOT = needsRootOrSkipFile('offsite afterPull', 'generations owned by root');

let moto: MotoServer;
let smtp: SmtpSink;
let root: string;
const savedEnv = { ...process.env };

before(async () => {
  if (NEEDS_ROOT) return;
  moto = await startMoto();
  smtp = await startSmtp();
  root = await mkdtemp(join(tmpdir(), 'baton-bzP-afterpull-'));
  Object.assign(process.env, moto.env);
});

after(async () => {
  if (NEEDS_ROOT) return;
  process.env = savedEnv;
  await moto?.stop();
  await smtp?.stop();
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function setup(opts: { afterPull: boolean; bucket?: string }) {
  const dir = join(root, `s${++n}`);
  const store = await makeSinkStore(join(dir, 'store'));
  const prefix = `ap${n}`;
  const config = join(dir, 'sink.yaml');
  await writeFile(
    config,
    `store: ${store}
stateDir: ${join(dir, 'state')}
alerts:
  mail: { to: [ops@example.com], from: baton@sink, smtp: '${smtp.url}' }
sources:
  - name: shop
    host: 127.0.0.1
    knownHosts: ${join(dir, 'known_hosts')}
    streams:
      data: { user: nobody, identity: ${join(dir, 'key')}, generations: 5 }
offsite:
  endpoint: ${moto.endpoint}
  region: ${moto.region}
  bucket: ${opts.bucket ?? moto.bucket}
  prefix: ${prefix}
  provider: generic
  forcePathStyle: true
  afterPull: ${String(opts.afterPull)}
`,
  );
  // one verified sink generation, as a pull leaves it
  const mirror = join(dir, 'mirror');
  await mkdir(join(mirror, 'srv', 'app'), { recursive: true });
  await writeFile(join(mirror, 'srv', 'app', 'a.txt'), `after pull ${n}\n`);
  const parent = join(store, 'shop', 'data');
  await mkdir(parent, { recursive: true });
  const id = `2026-11-0${n}T060000Z`;
  const built = await buildGeneration({
    source: 'shop',
    stream: 'data',
    id,
    mirror,
    paths: ['/srv/app'],
    parent,
    owner: { name: 'root', uid: 0, gid: 0, home: '/root' },
    names: await loadNameMaps(),
    previous: undefined,
    appStoppedAt: new Date(),
    appStartedAt: new Date(),
    log: createLogger({ format: 'json', level: 'error' }),
  });
  await rename(built.work, built.dir);
  return { config: await loadSinkConfig(config), prefix, id, genDir: built.dir };
}

async function commitKeys(prefix: string): Promise<string[]> {
  const r = await moto
    .client()
    .send(new ListObjectsV2Command({ Bucket: moto.bucket, Prefix: `${prefix}/commits/` }));
  return (r.Contents ?? []).map((o) => o.Key ?? '');
}

const opts = () => ({ now: () => new Date(), log: createLogger({ format: 'json', level: 'info' }) });

test('afterPull: true and a successful pull: the pulled stream is pushed and committed', async (t) => {
  if (NEEDS_ROOT) return t.skip('needs root');
  const s = await setup({ afterPull: true });
  const r = await pushAfterPull(s.config, [{ source: 'shop', stream: 'data', ok: true }], opts());
  assert.equal(r.length, 1);
  assert.equal(r[0]?.outcome.ok, true, r[0]?.outcome.error);
  assert.deepEqual(
    r[0]?.outcome.result?.pushed.map((p) => p.id),
    [s.id],
  );
  assert.deepEqual(await commitKeys(s.prefix), [`${s.prefix}/commits/shop/data/${s.id}`]);
});

test('afterPull: true but the pull failed, or afterPull: false: nothing is pushed', async (t) => {
  if (NEEDS_ROOT) return t.skip('needs root');
  const failed = await setup({ afterPull: true });
  assert.deepEqual(
    await pushAfterPull(failed.config, [{ source: 'shop', stream: 'data', ok: false }], opts()),
    [],
  );
  assert.deepEqual(await commitKeys(failed.prefix), []);
  const off = await setup({ afterPull: false });
  assert.deepEqual(
    await pushAfterPull(off.config, [{ source: 'shop', stream: 'data', ok: true }], opts()),
    [],
  );
  assert.deepEqual(await commitKeys(off.prefix), []);
});

test('afterPull: a failed push (missing bucket) is its own alert and log line, never throws, sink untouched', async (t) => {
  if (NEEDS_ROOT) return t.skip('needs root');
  const s = await setup({ afterPull: true, bucket: 'bzp-no-such-bucket' });
  const manifestBefore = await readFile(join(s.genDir, 'manifest'));
  const mailsBefore = smtp.messages.length;
  const r = await pushAfterPull(s.config, [{ source: 'shop', stream: 'data', ok: true }], opts());
  assert.equal(r.length, 1);
  assert.equal(r[0]?.outcome.ok, false);
  assert.equal(r[0]?.outcome.locked, false);
  assert.match(r[0]?.outcome.error ?? '', /bzp-no-such-bucket/);
  assert.doesNotMatch(r[0]?.outcome.error ?? '', /\n/);
  const mails = await smtp.waitFor(mailsBefore + 1);
  assert.match(mails[mailsBefore]?.subject ?? '', /offsite push FAILED/);
  assert.ok(recentLogLines().some((l) => l.includes('offsite push failed')));
  assert.deepEqual(await readFile(join(s.genDir, 'manifest')), manifestBefore);
});
