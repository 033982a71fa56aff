import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { describeMailTarget, sendMail } from '../../src/adapters/mail.js';
import type { MailConfig } from '../../src/config/schema.js';
import { JobError } from '../../src/errors.js';
import { startSmtp } from '../helpers/smtp.js';

const PASSWORD = 's3cret-Pa55word';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-mail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A port nothing listens on: bind, note, close. */
function deadPort(): Promise<number> {
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

/** Asserts `err` is a mail JobError and the password appears nowhere in it. */
function assertMailErrorWithoutPassword(err: unknown, password: string): JobError {
  assert.ok(err instanceof JobError, `expected JobError, got ${String(err)}`);
  assert.equal(err.step, 'mail');
  assert.equal(err.cause, undefined, 'the library error (session, commands) is not kept');
  const everything = [
    err.message,
    err.stack ?? '',
    JSON.stringify(err),
    // Every own property and the cause chain, as a logger serialising the error would see them.
    inspect(err, { depth: 10, showHidden: true }),
  ].join('\n');
  for (const form of [password, Buffer.from(password).toString('base64')]) {
    assert.ok(!everything.includes(form), `error leaks the password (${form}): ${everything}`);
  }
  return err;
}

test('a mail sent over SMTP arrives with its subject, body, sender and recipients', async (t) => {
  const smtp = await startSmtp();
  t.after(() => smtp.stop());
  const cfg: MailConfig = {
    to: ['ops@example.com', 'oncall@example.com'],
    from: 'baton@shop-prod',
    smtp: smtp.url,
  };

  const body = [
    'baton source backup failed on shop-prod',
    '',
    'step collect: rsync exit 23: some files could not be transferred',
    `a long line ${'x'.repeat(200)} end`,
    'Umlaute: Grüße, äöü — and = signs = fine',
  ].join('\n');
  await sendMail(cfg, { subject: '[baton] shop-prod: backup failed (collect)', text: body });

  const [mail] = await smtp.waitFor(1, 5000);
  assert.ok(mail);
  assert.equal(mail.subject, '[baton] shop-prod: backup failed (collect)');
  assert.equal(mail.text.trimEnd(), body);
  assert.equal(mail.from, 'baton@shop-prod');
  assert.deepEqual(mail.to, ['ops@example.com', 'oncall@example.com']);
  assert.match(mail.headers['content-type'] ?? '', /^text\/plain/);
});

test('a subject with a line break stays one header line', async (t) => {
  const smtp = await startSmtp();
  t.after(() => smtp.stop());
  const cfg: MailConfig = { to: ['ops@example.com'], from: 'baton@shop-prod', smtp: smtp.url };
  await sendMail(cfg, { subject: 'failed: first\r\nBcc: evil@example.com', text: 'x' });
  const [mail] = await smtp.waitFor(1, 5000);
  assert.equal(mail?.subject, 'failed: first Bcc: evil@example.com');
  assert.equal(mail?.headers.bcc, undefined);
  assert.deepEqual(mail?.to, ['ops@example.com']);
});

test('SMTP auth with the password from passwordFile (trailing newline trimmed) works', async (t) => {
  const smtp = await startSmtp({ user: 'baton', password: PASSWORD });
  t.after(() => smtp.stop());
  const dir = await tempDir(t);
  const passwordFile = join(dir, 'smtp-password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const cfg: MailConfig = {
    to: ['ops@example.com'],
    from: 'baton@shop-prod',
    smtp: `smtp://baton@127.0.0.1:${smtp.port}`,
    passwordFile,
  };

  await sendMail(cfg, { subject: 'with auth', text: 'hello' }, {});

  const [mail] = await smtp.waitFor(1, 5000);
  assert.equal(mail?.user, 'baton');
  assert.equal(mail?.subject, 'with auth');
  assert.ok(smtp.authAttempts.some((a) => a.ok && a.username === 'baton'));
});

test('SMTP auth takes the password from BATON_SMTP_PASSWORD when there is no passwordFile', async (t) => {
  const smtp = await startSmtp({ user: 'baton', password: PASSWORD });
  t.after(() => smtp.stop());
  const cfg: MailConfig = {
    to: ['ops@example.com'],
    from: 'b@x',
    smtp: `smtp://baton@127.0.0.1:${smtp.port}`,
  };
  await sendMail(cfg, { subject: 'env auth', text: 'hello' }, { BATON_SMTP_PASSWORD: PASSWORD });
  const [mail] = await smtp.waitFor(1, 5000);
  assert.equal(mail?.user, 'baton');
});

test('a rejected login fails with a JobError that does not contain the password, even when the server echoes it', async (t) => {
  const smtp = await startSmtp({ user: 'baton', password: 'the-right-one', echoAuthFailure: true });
  t.after(() => smtp.stop());
  const dir = await tempDir(t);
  const passwordFile = join(dir, 'smtp-password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const cfg: MailConfig = {
    to: ['ops@example.com'],
    from: 'b@x',
    smtp: `smtp://baton@127.0.0.1:${smtp.port}`,
    passwordFile,
  };

  const err = await sendMail(cfg, { subject: 's', text: 't' }, {}).then(
    () => assert.fail('expected the send to fail'),
    (e: unknown) => e,
  );
  assertMailErrorWithoutPassword(err, PASSWORD);
  assert.match((err as Error).message, /535/);
  assert.match((err as Error).message, /\*\*\*/, 'the echoed password is replaced by ***');
  assert.equal(smtp.messages.length, 0);
});

test('a wrong port fails quickly with a JobError that names the target but not the password', async () => {
  const port = await deadPort();
  const cfg: MailConfig = { to: ['ops@example.com'], from: 'b@x', smtp: `smtp://baton@127.0.0.1:${port}` };
  const started = Date.now();
  const err = await sendMail(cfg, { subject: 's', text: 't' }, { BATON_SMTP_PASSWORD: PASSWORD }).then(
    () => assert.fail('expected the send to fail'),
    (e: unknown) => e,
  );
  assert.ok(Date.now() - started < 5000, 'a refused connection fails at once, not after a timeout');
  const jobErr = assertMailErrorWithoutPassword(err, PASSWORD);
  assert.match(jobErr.message, new RegExp(`smtp://baton@127\\.0\\.0\\.1:${port}`));
  assert.match(jobErr.message, /ECONNREFUSED|ECONNECTION/);
});

test('a user in the URL without any password source is refused before connecting', async () => {
  const cfg: MailConfig = { to: ['o@x'], from: 'b@x', smtp: 'smtp://baton@127.0.0.1:1' };
  await assert.rejects(sendMail(cfg, { subject: 's', text: 't' }, {}), (e: unknown) => {
    assert.ok(e instanceof JobError);
    assert.match(e.message, /no password/);
    return true;
  });
});

test('a password inside the smtp URL is refused and not repeated', async () => {
  const cfg: MailConfig = { to: ['o@x'], from: 'b@x', smtp: `smtp://baton:${PASSWORD}@127.0.0.1:1` };
  const err = await sendMail(cfg, { subject: 's', text: 't' }, {}).then(
    () => assert.fail('expected a failure'),
    (e: unknown) => e,
  );
  assertMailErrorWithoutPassword(err, PASSWORD);
  assert.ok(!describeMailTarget(cfg).includes(PASSWORD));
});

test('options in the smtp URL query are refused in one line, not silently dropped, and nothing is sent', async (t) => {
  const smtp = await startSmtp({ user: 'baton', password: PASSWORD });
  t.after(() => smtp.stop());
  const cfg: MailConfig = {
    to: ['o@x'],
    from: 'b@x',
    smtp: `smtp://baton@127.0.0.1:${smtp.port}/?logger=true&debug=true&tls.rejectUnauthorized=false`,
  };
  const err = await sendMail(cfg, { subject: 's', text: 't' }, { BATON_SMTP_PASSWORD: PASSWORD }).then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assertMailErrorWithoutPassword(err, PASSWORD);
  const { message } = err as Error;
  assert.ok(!message.includes('\n'), message);
  assert.match(message, /takes no options \(got logger, debug, tls\)/);
  assert.ok(!message.includes('rejectUnauthorized'), 'the query is not repeated: ' + message);
  assert.equal(smtp.authAttempts.length, 0, 'refused before connecting');
  assert.ok(!describeMailTarget(cfg).includes('?'), describeMailTarget(cfg));
});

test('a URL that is not smtp, names no host or does not parse is refused in one line, with no warning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    for (const [smtp, why] of [
      ['http://127.0.0.1:1', /must start with smtp:\/\/ or smtps:\/\//],
      ['smtp:///nohost', /names no host/],
      ['smtp://127.0.0.1:abc', /not a valid URL/],
      ['smtp://127.0.0.1:99999', /not a valid URL/],
    ] as const) {
      await assert.rejects(
        sendMail({ to: ['o@x'], from: 'b@x', smtp }, { subject: 's', text: 't' }, {}),
        (e: unknown) => {
          assert.ok(e instanceof JobError && e.step === 'mail', String(e));
          assert.match(e.message, why);
          assert.ok(!e.message.includes('\n'), e.message);
          return true;
        },
      );
    }
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a percent-encoded user and an IPv6 host are read from the URL', async (t) => {
  const smtp = await startSmtp({ user: 'bat@on', password: PASSWORD });
  t.after(() => smtp.stop());
  const cfg: MailConfig = { to: ['o@x'], from: 'b@x', smtp: `smtp://bat%40on@127.0.0.1:${smtp.port}` };
  await sendMail(cfg, { subject: 'encoded user', text: 'x' }, { BATON_SMTP_PASSWORD: PASSWORD });
  const [mail] = await smtp.waitFor(1, 5000);
  assert.equal(mail?.user, 'bat@on');
  // [::1] is loopback: refused at once (nothing listens there), not after the TLS rule or a timeout
  const v6: MailConfig = { to: ['o@x'], from: 'b@x', smtp: `smtp://[::1]:${await deadPort()}` };
  await assert.rejects(
    sendMail(v6, { subject: 's', text: 't' }, {}),
    /ECONNREFUSED|ECONNECTION|EADDRNOTAVAIL|ENETUNREACH/,
  );
});

test('describeMailTarget names the transport and recipients', () => {
  assert.equal(
    describeMailTarget({ to: ['a@x', 'b@y'], from: 'f@z', smtp: 'smtp://u@mail.example:587' }),
    'smtp://u@mail.example:587 → a@x, b@y',
  );
  assert.equal(
    describeMailTarget({ to: ['a@x'], from: 'f@z', sendmail: '/usr/sbin/sendmail' }),
    'sendmail /usr/sbin/sendmail → a@x',
  );
});

async function fakeSendmail(dir: string, script: string): Promise<string> {
  const file = join(dir, 'sendmail');
  await writeFile(file, `#!/bin/sh\n${script}\n`);
  await chmod(file, 0o755);
  return file;
}

test('the sendmail transport pipes the message to the configured binary', async (t) => {
  const dir = await tempDir(t);
  const sendmail = await fakeSendmail(dir, `printf '%s\\n' "$@" > '${dir}/args'\ncat > '${dir}/message'`);
  const cfg: MailConfig = { to: ['ops@example.com', 'b@example.com'], from: 'baton@shop-prod', sendmail };

  await sendMail(cfg, { subject: 'via sendmail', text: 'body line 1\nbody line 2' });

  const args = (await readFile(join(dir, 'args'), 'utf8')).trim().split('\n');
  assert.deepEqual(args, ['-i', '-f', 'baton@shop-prod', 'ops@example.com', 'b@example.com']);
  const message = await readFile(join(dir, 'message'), 'utf8');
  assert.match(message, /^Subject: via sendmail$/m);
  assert.match(message, /^From: baton@shop-prod$/m);
  assert.match(message, /^To: ops@example.com, b@example.com$/m);
  assert.match(message, /body line 1\nbody line 2/);
  assert.ok(!message.includes('\r\n'), 'sendmail gets unix line ends');
});

test('a failing sendmail gives a JobError with its exit code and last stderr line', async (t) => {
  const dir = await tempDir(t);
  const sendmail = await fakeSendmail(dir, `cat >/dev/null\necho "sendmail: fatal: no queue" >&2\nexit 75`);
  const cfg: MailConfig = { to: ['o@x'], from: 'b@x', sendmail };
  await assert.rejects(sendMail(cfg, { subject: 's', text: 't' }), (e: unknown) => {
    assert.ok(e instanceof JobError);
    assert.equal(e.step, 'mail');
    assert.match(e.message, /exit 75: sendmail: fatal: no queue/);
    return true;
  });
});

test('a hanging sendmail is killed after the timeout', async (t) => {
  const dir = await tempDir(t);
  const sendmail = await fakeSendmail(dir, 'cat >/dev/null\nexec sleep 30');
  const cfg: MailConfig = { to: ['o@x'], from: 'b@x', sendmail };
  const started = Date.now();
  await assert.rejects(
    sendMail(cfg, { subject: 's', text: 't' }, process.env, { timeoutMs: 300 }),
    /timed out/,
  );
  assert.ok(Date.now() - started < 5000);
});

test('a recipient that looks like a sendmail option is refused', async (t) => {
  const dir = await tempDir(t);
  const sendmail = await fakeSendmail(dir, `touch '${dir}/ran'`);
  const cfg: MailConfig = { to: ['-oQ/tmp/x'], from: 'b@x', sendmail };
  await assert.rejects(sendMail(cfg, { subject: 's', text: 't' }), /starts with "-"/);
  await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' });
});
