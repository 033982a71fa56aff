import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runBaton, show } from '../helpers/cli.js';
import { startHttp, type HttpRecorder } from '../helpers/http.js';
import { makeSourceSetup, type SourceSetup } from '../helpers/source-setup.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';

// A successful run tells healthchecks what it did, in the body of the success ping.
const NEEDS_ROOT = needsRootOrSkipFile('ping-summary', 'users');

let root: string;
let s: SourceSetup;
let server: HttpRecorder;

before(async () => {
  if (NEEDS_ROOT) return;
  server = await startHttp();
  root = await mkdtemp(join(tmpdir(), 'baton-ping-summary-'));
  await chmod(root, 0o755);
  await ensureUser('bzJData');
  await ensureUser('bzJLogs');
  s = await makeSourceSetup(root, {
    name: 'pingsum',
    dataUser: 'bzJData',
    logsUser: 'bzJLogs',
    extraYaml: `alerts:\n  ping: { url: "${server.url}/ping/uuid-1" }\n`,
  });
});

after(async () => {
  if (NEEDS_ROOT) return;
  s.app.kill();
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

test(
  'source backup: the success ping POSTs the id, the downtime and each stream’s size, under 1 kB',
  { skip: NEEDS_ROOT },
  async () => {
    await writeFile(join(s.app.dataDir, 'blob.bin'), Buffer.alloc(5000, 1));
    const r = await runBaton(['source', 'backup', '--config', s.config]);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(
      server.requests.map((h) => `${h.method} ${h.url}`),
      ['GET /ping/uuid-1/start', 'POST /ping/uuid-1'],
    );
    const body = server.requests[1]?.body ?? '';
    assert.match(
      body,
      /^backup \d{4}-\d\d-\d\dT\d\d\d\d\d\dZ, downtime \d+\.\d s; data \d[\d,]* files?, \d+(\.\d)? (B|KiB|MiB); logs \d[\d,]* files?, /,
    );
    assert.ok(Buffer.byteLength(body) < 1000, body);
  },
);
