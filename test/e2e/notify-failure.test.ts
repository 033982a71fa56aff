/**
 * `baton notify-failure UNIT`: what the `baton-<kind>-failure@.service` template runs when a baton
 * unit fails. The built CLI against a real SMTP server (test/helpers/smtp.ts); the journal part
 * through the host's real journalctl, and with no journalctl on the PATH.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess } from '../../src/adapters/run.js';
import { runBaton, show } from '../helpers/cli.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';

let tmp: string;
let smtp: SmtpSink;

const sinkConfig = (alerts: string) => `store: ${tmp}/store
stateDir: ${tmp}/state
sources:
  - name: nf-src
    host: 127.0.0.1
    knownHosts: ${tmp}/known_hosts
    streams:
      data: { user: bzIData, identity: ${tmp}/keys/data, generations: 3 }
${alerts}`;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'baton-notify-failure-'));
  smtp = await startSmtp();
});

after(async () => {
  await smtp.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('baton notify-failure', () => {
  test('alerts.mail: a real mail "[baton] UNIT failed" with the unit\'s last journal lines; exit 0', async () => {
    const config = join(tmp, 'mail.yaml');
    await writeFile(
      config,
      sinkConfig(`alerts:\n  mail: { to: [ops@example.com], from: baton@sink, smtp: "${smtp.url}" }\n`),
    );
    const unit = 'baton-sink-pull-data.service';
    const n = smtp.messages.length;
    const r = await runBaton(['notify-failure', unit, '--config', config]);
    assert.equal(r.code, 0, show(r));
    const mail = (await smtp.waitFor(n + 1)).at(-1)!;
    assert.equal(mail.subject, `[baton] ${unit} failed`);
    assert.deepEqual(mail.to, ['ops@example.com']);
    assert.match(
      mail.text,
      new RegExp(`The systemd unit ${unit.replaceAll('.', '\\.')} failed on .* \\(sink\\)`),
    );
    const which = await runProcess(['sh', '-c', 'command -v journalctl'], { timeoutMs: 10_000 });
    if (which.code === 0) {
      // what journalctl says for the unit here (possibly "-- No entries --") is in the body
      const j = await runProcess(['journalctl', '-u', unit, '-n', '50', '--no-pager'], { timeoutMs: 15_000 });
      const lastLine = j.stdout.trim().split('\n').at(-1) ?? '';
      if (j.code === 0) assert.ok(mail.text.includes(lastLine), mail.text);
    } else {
      assert.match(mail.text, /journalctl is not installed/);
    }
  });

  test('no journalctl on the PATH: the body says so, the mail still goes out', async () => {
    const config = join(tmp, 'mail.yaml');
    const n = smtp.messages.length;
    const r = await runBaton(['notify-failure', 'baton-source-verify.service', '--config', config], {
      env: { PATH: join(tmp, 'empty-path') },
    });
    assert.equal(r.code, 0, show(r));
    const mail = (await smtp.waitFor(n + 1)).at(-1)!;
    assert.equal(mail.subject, '[baton] baton-source-verify.service failed');
    assert.match(mail.text, /\(no journal lines: journalctl is not installed on this host\)/);
  });

  test('no alert channel configured: exit 0 and one log line, nothing sent', async () => {
    const config = join(tmp, 'none.yaml');
    await writeFile(config, sinkConfig(''));
    const n = smtp.messages.length;
    const r = await runBaton(['notify-failure', 'baton-sink-verify.service', '--config', config]);
    assert.equal(r.code, 0, show(r));
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, show(r));
    assert.match(
      lines[0] ?? '',
      /no alert channel configured; not sent: \[baton\] baton-sink-verify\.service failed/,
    );
    assert.equal(smtp.messages.length, n);
  });

  test('a config that cannot be read: still exit 0, one error line naming the unit', async () => {
    const r = await runBaton([
      'notify-failure',
      'baton-sink-verify.service',
      '--config',
      join(tmp, 'missing.yaml'),
    ]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /could not alert that baton-sink-verify\.service failed: /);
  });

  test('not a unit name (an option, a path) -> exit 2, nothing sent', async () => {
    const config = join(tmp, 'mail.yaml');
    const n = smtp.messages.length;
    for (const bad of ['--all', '../x.service', 'a b.service']) {
      const r = await runBaton(['notify-failure', '--config', config, '--', bad]);
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr.trim().split('\n').at(-1) ?? '', /is not a systemd unit name/);
    }
    assert.equal(smtp.messages.length, n);
  });
});
