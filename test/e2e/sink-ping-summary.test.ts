/**
 * Issue 15: a successful `baton sink pull` tells healthchecks what it pulled, in the body of the
 * success ping, through a real pull (sshd, the restricted user, the real gate) and a real HTTP server.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { show } from '../helpers/cli.js';
import {
  makeGateFixture,
  pullJson,
  startE2e,
  writeSinkConfig,
  type E2e,
  type GateFixture,
} from '../helpers/e2e.js';
import { startHttp, type HttpRecorder } from '../helpers/http.js';
import { needsRootOrSkipFile } from '../helpers/users.js';

const NEEDS_ROOT = needsRootOrSkipFile('sink-ping-summary', 'creates users, runs sshd');
const SOURCE = 'bqb-src';
const USER = 'bqBPingData';

let e: E2e;
let fx: GateFixture;
let http: HttpRecorder;
let sinkConfig: string;

before(async () => {
  if (NEEDS_ROOT) return;
  http = await startHttp();
  e = await startE2e({ prefix: 'baton-sink-ping-', users: { data: USER }, keys: ['data'] });
  fx = await makeGateFixture(e, { source: SOURCE, baseDay: Date.UTC(2026, 0, 7) });
  sinkConfig = await writeSinkConfig(join(e.root, 'sink.yaml'), {
    store: fx.H.sinkStore,
    stateDir: fx.H.sinkState,
    sshd: e.sshd,
    verify: true,
    timeout: '60s',
    sources: [
      { name: SOURCE, streams: { data: { user: USER, identity: e.key('data').privateKey, generations: 5 } } },
    ],
    alerts: `ping: { url: "${http.url}/ping/sink-uuid" }`,
  });
});

after(async () => {
  if (NEEDS_ROOT) return;
  await e?.stop();
  await http?.stop();
});

test(
  'sink pull: the success ping POSTs what each source pulled (id, files, size), under 1 kB',
  { skip: NEEDS_ROOT },
  async () => {
    const a = await fx.stage({ files: { 'a.txt': 'first\n', 'b.txt': 'second!\n' } });
    const b = await fx.stage({ files: { 'a.txt': 'first\n', 'b.txt': 'changed\n' } });
    const { r, o } = await pullJson(sinkConfig);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(o.pulled, [a.id, b.id]);
    assert.deepEqual(
      http.requests.map((h) => `${h.method} ${h.url}`),
      ['GET /ping/sink-uuid/start', 'POST /ping/sink-uuid'],
    );
    const body = http.requests[1]?.body ?? '';
    assert.match(
      body,
      new RegExp(
        `^${SOURCE}/data: pulled 2 generations up to ${b.id} \\(\\d[\\d,]* files?, \\d+(\\.\\d)? (B|KiB)\\)$`,
      ),
    );
    assert.ok(Buffer.byteLength(body) < 1000, body);

    // nothing new: the next run still says so, in one line per source
    const again = await pullJson(sinkConfig);
    assert.equal(again.r.code, 0, show(again.r));
    assert.equal(http.requests.at(-1)?.body, `${SOURCE}/data: nothing new`);
  },
);
