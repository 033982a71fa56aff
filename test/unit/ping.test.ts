import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { test } from 'node:test';
import { ping, pingUrl } from '../../src/adapters/ping.js';
import { startHttp as startRecorder, type Received } from '../helpers/http.js';

async function startHttp(
  t: { after: (fn: () => Promise<void>) => void },
  handler: (req: Received, res: ServerResponse) => void = (_q, res) => res.end('OK'),
): Promise<{ base: string; hits: Received[] }> {
  const h = await startRecorder(handler);
  t.after(h.stop);
  return { base: `${h.url}/ping/abc-123`, hits: h.requests };
}

test('start, success and fail go to url/start, url and url/fail', async (t) => {
  const { base, hits } = await startHttp(t);
  const cfg = { url: base, timeout: 5000 };

  assert.deepEqual(await ping(cfg, 'start'), { ok: true, status: 200 });
  assert.deepEqual(await ping(cfg, 'success'), { ok: true, status: 200 });
  assert.deepEqual(await ping(cfg, 'fail', 'collect: rsync exit 23'), { ok: true, status: 200 });

  assert.deepEqual(
    hits.map(({ method, url, body }) => ({ method, url, body })),
    [
      { method: 'GET', url: '/ping/abc-123/start', body: '' },
      { method: 'GET', url: '/ping/abc-123', body: '' },
      { method: 'POST', url: '/ping/abc-123/fail', body: 'collect: rsync exit 23' },
    ],
  );
});

test('a trailing slash and a query string in the URL are kept in place', () => {
  assert.equal(pingUrl('https://hc.example/uuid/', 'start'), 'https://hc.example/uuid/start');
  assert.equal(pingUrl('https://hc.example/uuid?rid=1', 'fail'), 'https://hc.example/uuid/fail?rid=1');
  assert.equal(pingUrl('https://hc.example/uuid?rid=1', 'success'), 'https://hc.example/uuid?rid=1');
});

test('a long body is cut to its tail', async (t) => {
  const { base, hits } = await startHttp(t);
  const body = `${'a'.repeat(50_000)}THE END`;
  assert.equal((await ping({ url: base, timeout: 5000 }, 'success', body)).ok, true);
  assert.equal(hits[0]?.method, 'POST');
  assert.ok((hits[0]?.body.length ?? 0) <= 10_000);
  assert.ok(hits[0]?.body.endsWith('THE END'));
});

test('an HTTP error status gives ok:false with the status', async (t) => {
  const { base } = await startHttp(t, (_req, res) => {
    res.statusCode = 404;
    res.end('not found');
  });
  assert.deepEqual(await ping({ url: base, timeout: 5000 }, 'start'), {
    ok: false,
    status: 404,
    error: 'ping start: HTTP 404',
  });
});

test('a dead port gives ok:false without throwing', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createNetServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 1));
    });
  });
  const r = await ping({ url: `http://127.0.0.1:${port}/uuid`, timeout: 5000 }, 'fail', 'boom');
  assert.equal(r.ok, false);
  assert.match(r.error ?? '', /^ping fail: .*ECONNREFUSED/);
  assert.ok(!(r.error ?? '').includes('/uuid'), 'the check URL is not repeated');
});

test('a server that never answers gives ok:false after the timeout', async (t) => {
  const { base } = await startHttp(t, () => {
    /* never respond */
  });
  const started = Date.now();
  const r = await ping({ url: base, timeout: 200 }, 'success');
  assert.deepEqual(r, { ok: false, error: 'ping success: timed out after 200 ms' });
  assert.ok(Date.now() - started < 3000);
});

test('no ping configured sends nothing and is ok', async () => {
  assert.deepEqual(await ping(undefined, 'start'), { ok: true, skipped: true });
});
