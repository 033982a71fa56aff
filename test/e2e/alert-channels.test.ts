import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { createLogger, recentLogLines } from '../../src/adapters/log.js';
import { sendAlert } from '../../src/adapters/notify.js';
import { exampleConfigFile, parseConfigText } from '../../src/config/load.js';
import type { AlertChannels } from '../../src/config/schema.js';
import { startHttp as startRecorder, type Received } from '../helpers/http.js';
import { startSmtp } from '../helpers/smtp.js';

/** startHttp, stopped when the test ends. */
async function startHttp(
  t: { after: (fn: () => Promise<void>) => void },
  answer?: (req: Received, res: ServerResponse) => void,
): Promise<{ url: string; requests: Received[] }> {
  const h = await startRecorder(answer);
  t.after(h.stop);
  return h;
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-alert-channels-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The channels as a sink config would carry them, parsed by the real schema (defaults applied). */
function channels(alerts: Record<string, unknown>): AlertChannels {
  const example = parse(readFileSync(exampleConfigFile('sink'), 'utf8')) as Record<string, unknown>;
  return parseConfigText(JSON.stringify({ ...example, alerts }), 'sink.yaml', 'sink').alerts;
}

const ALERT = {
  subject: '[baton] sink: pull of data FAILED for shop',
  text: 'baton sink pull data failed:\n\nshop/data: verify: a/b.txt sha256 1234 != 5678\n',
};
const log = createLogger({ format: 'text', level: 'debug', fd: 1 });

test('alerts.webhook generic: the event is POSTed as JSON with the configured headers and the token from its file', async (t) => {
  const http = await startHttp(t);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'token'), 'tok-S3CRET\n', { mode: 0o600 });
  const cfg = channels({
    webhook: {
      url: `${http.url}/hook/abc`,
      headers: { 'X-Team': 'ops-HEADER-SECRET' },
      tokenFile: join(dir, 'token'),
    },
  });
  await sendAlert(cfg, join(dir, 'pending'), ALERT, log);
  assert.equal(http.requests.length, 1);
  const r = http.requests[0]!;
  assert.equal(r.method, 'POST');
  assert.equal(r.url, '/hook/abc');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers.authorization, 'Bearer tok-S3CRET');
  assert.equal(r.headers['x-team'], 'ops-HEADER-SECRET');
  const ev = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(ev.tool, 'baton');
  assert.equal(ev.subject, ALERT.subject);
  assert.equal(ev.text, ALERT.text);
  assert.equal(typeof ev.host, 'string');
  assert.ok(!Number.isNaN(Date.parse(String(ev.time))));
  const logged = recentLogLines().join('\n');
  assert.match(logged, /alert sent via webhook generic http:\/\/127\.0\.0\.1:\d+\/…/);
  for (const secret of ['tok-S3CRET', 'HEADER-SECRET', '/hook/abc'])
    assert.ok(!logged.includes(secret), secret);
});

test('alerts.webhook presets: ntfy posts JSON publishing to the server root with the topic; slack posts {text}', async (t) => {
  const http = await startHttp(t);
  const dir = await tempDir(t);
  await sendAlert(
    channels({ webhook: { url: `${http.url}/base/ops-alerts`, preset: 'ntfy' } }),
    dir,
    ALERT,
    log,
  );
  await sendAlert(
    channels({ webhook: { url: `${http.url}/services/T/B/x`, preset: 'slack' } }),
    dir,
    ALERT,
    log,
  );
  assert.equal(http.requests.length, 2);
  const [ntfy, slack] = http.requests;
  assert.equal(ntfy?.url, '/base');
  assert.deepEqual(JSON.parse(ntfy?.body ?? ''), {
    topic: 'ops-alerts',
    title: ALERT.subject,
    message: ALERT.text,
    priority: 4,
    tags: ['warning'],
  });
  assert.equal(slack?.url, '/services/T/B/x');
  const body = JSON.parse(slack?.body ?? '') as { text: string };
  assert.deepEqual(Object.keys(body), ['text']);
  assert.ok(body.text.startsWith(`*${ALERT.subject}*`));
  assert.ok(body.text.includes('a/b.txt sha256 1234 != 5678'));
});

test('alerts.command: the event arrives as JSON on stdin and in BATON_EVENT_* variables', async (t) => {
  const dir = await tempDir(t);
  const script = join(dir, 'notify.sh');
  await writeFile(
    script,
    `#!/bin/sh\ncat > "${dir}/stdin.json"\nprintf '%s\\n%s\\n' "$BATON_EVENT_SUBJECT" "$BATON_EVENT_HOST" > "${dir}/env.txt"\nprintf '%s' "$BATON_EVENT_TEXT" > "${dir}/text.txt"\n`,
  );
  await chmod(script, 0o755);
  await sendAlert(channels({ command: { run: [script] } }), join(dir, 'pending'), ALERT, log);
  const ev = JSON.parse(await readFile(join(dir, 'stdin.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(ev.subject, ALERT.subject);
  assert.equal(ev.text, ALERT.text);
  const [subject, host] = (await readFile(join(dir, 'env.txt'), 'utf8')).split('\n');
  assert.equal(subject, ALERT.subject);
  assert.equal(host, ev.host);
  assert.equal(await readFile(join(dir, 'text.txt'), 'utf8'), ALERT.text);
});

test('a hanging webhook and a failing command neither block nor stop the mail; each failure is one log line', async (t) => {
  const smtp = await startSmtp();
  t.after(() => smtp.stop());
  // answers nothing: the request hangs until the client gives up
  const hanging = await startHttp(t, () => undefined);
  const dir = await tempDir(t);
  const script = join(dir, 'fail.sh');
  await writeFile(script, '#!/bin/sh\necho "apprise: no such service" >&2\nexit 3\n');
  await chmod(script, 0o755);
  const cfg = channels({
    mail: { to: ['ops@example.com'], from: 'baton@sink', smtp: smtp.url },
    webhook: { url: `${hanging.url}/hook`, timeout: '1s' },
    command: { run: [script] },
  });
  const started = Date.now();
  const mailed = await sendAlert(cfg, join(dir, 'pending'), ALERT, log);
  const took = Date.now() - started;
  assert.equal(mailed, true);
  const [mail] = await smtp.waitFor(1);
  assert.equal(mail?.subject, ALERT.subject);
  assert.equal(hanging.requests.length, 1, 'the webhook was tried');
  assert.ok(took < 10_000, `the hanging webhook was cut at its timeout (took ${took} ms)`);
  const lines = recentLogLines();
  const webhookFail = lines.filter((l) => l.includes('alert via webhook') && l.includes('failed'));
  const commandFail = lines.filter((l) => l.includes('alert via command failed'));
  assert.equal(webhookFail.length, 1, lines.join('\n'));
  assert.match(webhookFail[0] ?? '', /timed out after 1000 ms/);
  assert.equal(commandFail.length, 1, lines.join('\n'));
  assert.match(commandFail[0] ?? '', /exit 3: apprise: no such service/);
  assert.deepEqual(
    await readdir(join(dir, 'pending')).catch(() => []),
    [],
    'the mail went out: nothing pending',
  );
});

test('a webhook answering 500 and a command that hangs are cut off; the other channels still deliver', async (t) => {
  const http = await startHttp(t, (_r, res) => {
    res.statusCode = 500;
    res.end('boom');
  });
  const ok = await startHttp(t);
  const dir = await tempDir(t);
  const script = join(dir, 'hang.sh');
  await writeFile(script, '#!/bin/sh\nsleep 600\n');
  await chmod(script, 0o755);
  const started = Date.now();
  await sendAlert(
    channels({ webhook: { url: `${http.url}/x` }, command: { run: [script], timeout: '1s' } }),
    dir,
    ALERT,
    log,
  );
  assert.ok(Date.now() - started < 10_000);
  const lines = recentLogLines();
  assert.ok(
    lines.some((l) => /alert via webhook .* failed: HTTP 500/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => /alert via command failed: timed out/.test(l)),
    lines.join('\n'),
  );
  // and a working webhook beside a hanging command is delivered
  await sendAlert(
    channels({ webhook: { url: `${ok.url}/y` }, command: { run: [script], timeout: '1s' } }),
    dir,
    ALERT,
    log,
  );
  assert.equal(ok.requests.length, 1);
});

test('config: an ntfy webhook without a topic and a non-http URL are refused', () => {
  assert.throws(() => channels({ webhook: { url: 'https://ntfy.sh/', preset: 'ntfy' } }), /topic/);
  assert.throws(() => channels({ webhook: { url: 'file:///etc/passwd' } }));
  assert.throws(() => channels({ webhook: { url: 'https://x.example/h', headers: { 'X-A': 'a\r\nB: c' } } }));
});
