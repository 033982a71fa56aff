/**
 * `baton notify-failure UNIT`: what the `baton-<kind>-failure@.service` template runs when a baton
 * unit fails. The built CLI against a real SMTP server (test/helpers/smtp.ts); the journal part
 * through the host's real journalctl, and with no journalctl on the PATH.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess } from '../../src/adapters/run.js';
import { runBaton, show } from '../helpers/cli.js';
import { fileEntry, writeGenerationDir } from '../helpers/generation-builder.js';
import { makeSinkStore } from '../helpers/sink-store.js';
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

  test('a sink verify mismatch under systemd: one alert (the verdict), the OnFailure= handler of the same run stays quiet', async () => {
    const config = join(tmp, 'mail.yaml');
    await makeSinkStore(join(tmp, 'store'));
    const id = '2026-01-02T030405Z';
    const dir = join(tmp, 'store', 'nf-src', 'data', id);
    await mkdir(dir, { recursive: true });
    await writeGenerationDir(dir, {
      id,
      entries: [fileEntry('etc/app.conf', 'good bytes')],
      tree: { 'etc/app.conf': 'good bytes' },
    });
    await writeFile(join(dir, 'tree', 'etc', 'app.conf'), 'rotten!!!!'); // same size, other bytes
    const run = 'c0ffee00c0ffee00c0ffee00c0ffee00';
    const n = smtp.messages.length;
    const v = await runBaton(['verify', '--all', '--config', config], { env: { INVOCATION_ID: run } });
    assert.equal(v.code, 1, show(v));
    const verdict = (await smtp.waitFor(n + 1)).at(-1)!;
    assert.match(verdict.subject, /verify found 1 damaged generation/);

    // systemd now starts baton-sink-failure@baton-sink-verify.service with the failed run's ids
    const unit = 'baton-sink-verify.service';
    const quiet = await runBaton(['notify-failure', unit, '--config', config], {
      env: { MONITOR_INVOCATION_ID: run, MONITOR_UNIT: unit },
    });
    assert.equal(quiet.code, 0, show(quiet));
    assert.match(
      quiet.stderr,
      /not alerting again: the failed run of baton-sink-verify\.service already alerted: .*verify found 1 damaged/,
    );
    // a failure that was not alerted by its run (another invocation) still gets its alert
    const other = await runBaton(['notify-failure', unit, '--config', config], {
      env: { MONITOR_INVOCATION_ID: 'c0ffee00c0ffee00c0ffee00c0ffee01', MONITOR_UNIT: unit },
    });
    assert.equal(other.code, 0, show(other));
    const mails = await smtp.waitFor(n + 2);
    assert.equal(mails.length, n + 2, 'exactly one more mail: the unalerted failure');
    assert.equal(mails.at(-1)!.subject, `[baton] ${unit} failed`);
    assert.deepEqual(await readdir(join(tmp, 'state', 'alerted')), [run]);
  });
});
