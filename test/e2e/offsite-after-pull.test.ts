import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createLogger, recentLogLines } from '../../src/adapters/log.js';
import { loadSinkConfig } from '../../src/config/load.js';
import { pushAfterPull } from '../../src/offsite/after-pull.js';
import { makeSinkStore } from '../helpers/sink-store.js';
import { addSinkGeneration, offsiteBlock } from '../helpers/offsite-setup.js';
import { makeGateFixture, pullJson, startE2e, writeSinkConfig } from '../helpers/e2e.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

// offsite.afterPull: the function `baton sink pull` calls at its end (after its acks), run with a real
// sink config, a real verified sink generation, moto_server as the bucket and a real SMTP server for
// the alert; the last test runs a REAL `baton sink pull` (sshd, a restricted stream user, the gate).
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
${offsiteBlock(moto, { prefix, afterPull: opts.afterPull, ...(opts.bucket ? { bucket: opts.bucket } : {}) })}`,
  );
  // one verified sink generation, as a pull leaves it
  const mirror = join(dir, 'mirror');
  await mkdir(join(mirror, 'srv', 'app'), { recursive: true });
  await writeFile(join(mirror, 'srv', 'app', 'a.txt'), `after pull ${n}\n`);
  const built = await addSinkGeneration(store, mirror);
  return { config: await loadSinkConfig(config), prefix, id: built.id, genDir: built.dir };
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

test(
  'afterPull through a real `baton sink pull`: the pulled generation is committed offsite; a failing endpoint is its own alert and the pull still exits 0, published and acked',
  { skip: NEEDS_ROOT },
  async () => {
    const e = await startE2e({
      prefix: 'baton-bzS-afterpull-',
      users: { data: 'bzSData' },
      keys: ['data'],
      smtp: true,
    });
    try {
      const g = await makeGateFixture(e, { source: 'shop', baseDay: Date.UTC(2026, 10, 20) });
      const sink = async (name: string, prefix: string, bucket?: string) => {
        const file = await writeSinkConfig(join(e.root, name), {
          store: g.H.sinkStore,
          stateDir: g.H.sinkState,
          sshd: e.sshd,
          sources: [
            { name: 'shop', streams: { data: { user: 'bzSData', identity: e.key('data').privateKey } } },
          ],
          mailUrl: e.smtp.url,
        });
        await appendFile(
          file,
          offsiteBlock(moto, { prefix, afterPull: true, ...(bucket ? { bucket } : {}) }),
        );
        return file;
      };
      const ok = await sink('sink-ok.yaml', 'pull-ok');
      const w1 = await g.stage();
      const { r, o } = await pullJson(ok, { timeoutMs: 150_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual([o.pulled, o.acked], [[w1.id], [w1.id]]);
      assert.deepEqual(await commitKeys('pull-ok'), [`pull-ok/commits/shop/data/${w1.id}`]);

      const failing = await sink('sink-failing.yaml', 'pull-fail', 'bzs-no-such-bucket');
      const mails = e.smtp.messages.length;
      const w2 = await g.stage();
      const f = await pullJson(failing, { timeoutMs: 150_000 });
      assert.equal(f.r.code, 0, f.r.stderr);
      assert.deepEqual([f.o.ok, f.o.pulled, f.o.acked], [true, [w2.id], [w2.id]]);
      const got = await e.smtp.waitFor(mails + 1);
      assert.deepEqual(
        got.slice(mails).map((m) => /offsite push FAILED/.test(m.subject)),
        [true],
      );
      assert.match(f.r.stderr, /bzs-no-such-bucket/);
      const published = await readFile(join(g.H.sinkData, w2.id, 'manifest'));
      assert.ok(published.length > 0);
    } finally {
      await e.stop();
    }
  },
);
