import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { parseMetrics, type Sample } from '../../src/core/metrics.js';
import type { StatusReport } from '../../src/status/report.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  makeKeyPair,
  writeAuthorizedKeys,
  type TestUser,
  needsRootOrSkipFile,
} from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { writeGeneration } from '../helpers/gate-fixtures.js';
import { countColours, countPixelsNear, decodePng } from '../helpers/png.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// `baton status` (text, --json, --html), the sink's stale alert and the Prometheus metrics, over real
// parts: a source backup, a real sshd on loopback with a forced-command key, the built CLI, a real
// SMTP server, headless Chromium for the HTML page. The clock is set with BATON_NOW.
const NEEDS_ROOT = needsRootOrSkipFile('status', 'creates a user, runs sshd');

const USER = 'batonStsData';
const H = 3_600_000;
// "Now" for the whole file: the real time to the second (the gate on the source uses the real clock).
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);
const at = (hoursBefore: number) => new Date(NOW.getTime() - hoursBefore * H).toISOString();
const idAt = (hoursBefore: number) => formatGenerationId(new Date(NOW.getTime() - hoursBefore * H));

let root: string;
let smtp: SmtpSink;
let sshd: Sshd;
let user: TestUser;
let sourceConfig: string;
let sinkConfig: string;
const P = { handover: '', store: '', sinkStore: '', sinkState: '', sourceState: '', textfile: '' };

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-status-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  user = await ensureUser(USER);
  const keys = join(root, 'keys');
  await mkdir(keys, { mode: 0o700 });
  const key = await makeKeyPair(keys, 'data');
  sshd = await startSshd();
  P.handover = join(root, 'handover', 'data');
  P.store = join(root, 'source-store');
  P.sinkStore = await makeSinkStore(join(root, 'sink-store'));
  P.sinkState = join(root, 'sink-state');
  P.sourceState = join(root, 'source-state');
  P.textfile = join(root, 'textfile');
  await mkdir(P.textfile);
  const appData = join(root, 'app-data');
  await mkdir(appData);
  await writeFile(join(appData, 'orders.db'), 'order 1\norder 2\n');
  await writeFile(join(appData, 'settings.json'), '{"shop": true}\n');
  await mkdir(P.handover, { recursive: true });
  await chown(P.handover, user.uid, user.gid);
  sourceConfig = join(root, 'source.yaml');
  await writeFile(
    sourceConfig,
    `name: stsrc
stateDir: ${P.sourceState}
app: { stop: "true", start: "true" }
streams:
  data: { paths: [${appData}], handover: ${P.handover}, user: ${USER}, store: ${P.store}, generations: 3 }
limits: { minFreeBytes: 0 }
alerts: { transportOverdue: 20h }
metrics: { textfileDir: ${P.textfile} }
`,
  );
  await chmod(sourceConfig, 0o644);
  await writeAuthorizedKeys(user, [
    `restrict,command="${process.execPath} ${BATON_MAIN} gate data --config ${sourceConfig}" ${key.publicKey}`,
  ]);
  sinkConfig = join(root, 'sink.yaml');
  await writeFile(
    sinkConfig,
    `store: ${P.sinkStore}
stateDir: ${P.sinkState}
sources:
  - name: stsrc
    host: 127.0.0.1
    port: ${sshd.port}
    knownHosts: ${sshd.knownHostsFile}
    streams:
      data: { user: ${USER}, identity: ${key.privateKey}, generations: 5 }
alerts:
  staleAfter: 30h
  mail: { to: [ops@example.com], from: baton@sink, smtp: "${smtp.url}" }
metrics: { textfileDir: ${P.textfile} }
recoveryTiers:
  - { name: HostEurope daily snapshot, keepDays: 14, scope: whole source filesystem }
`,
  );
  // Two older generations already in the sink store, 72 h and 48 h before NOW.
  for (const h of [72, 48]) {
    await writeGeneration(join(P.sinkStore, 'stsrc', 'data'), idAt(h), { source: 'stsrc', stream: 'data' });
  }
});

after(async () => {
  if (NEEDS_ROOT) return;
  await sshd.stop();
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

const baton = (args: string[], hoursBefore: number) =>
  runBaton(args, { env: { BATON_NOW: at(hoursBefore) } });

async function statusJson(config: string, hoursBefore: number) {
  const r = await baton(['status', '--json', '--config', config], hoursBefore);
  return { r, report: JSON.parse(r.stdout) as StatusReport };
}

async function metrics(file: string): Promise<Sample[]> {
  return parseMetrics(await readFile(file, 'utf8'));
}
const valueOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

test(
  'sink status --json at NOW: the stream is stale (newest 48h > 30h), exit 1',
  { skip: NEEDS_ROOT },
  async () => {
    const { r, report } = await statusJson(sinkConfig, 0);
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      /^baton: status: 1 problem\(s\): stsrc\/data: no new verified generation for 2d 0h/m,
    );
    assert.equal(report.format, 'baton-status/1');
    assert.equal(report.host, 'sink');
    assert.ok(
      Math.abs(Date.parse(report.now) - NOW.getTime()) < 60_000,
      `BATON_NOW sets the clock: ${report.now}`,
    );
    assert.equal(report.ok, false);
    const [s] = report.streams;
    assert.ok(s);
    assert.equal(s.source, 'stsrc');
    assert.deepEqual(
      s.stores[0]?.generations.map((g) => [g.id, g.verified, g.files]),
      [
        [idAt(72), true, 4],
        [idAt(48), true, 4],
      ],
    );
    assert.equal(s.stale?.reason, 'no-new-generation');
    assert.ok(Math.abs((s.stale?.ageSeconds ?? 0) - 48 * 3600) < 60);
    assert.equal(s.stale?.limitSeconds, 30 * 3600);
    assert.deepEqual(
      report.problems.map((p) => p.kind),
      ['stale'],
    );
    const tier = report.recoveryPoints.find((p) => p.kind === 'tier');
    assert.equal(tier?.name, 'HostEurope daily snapshot');
    assert.ok(Math.abs(Date.parse(tier?.oldest ?? '') - (NOW.getTime() - 14 * 24 * H)) < 60_000);
    assert.deepEqual(
      report.recoveryPoints.filter((p) => p.kind === 'sink store').map((p) => [p.name, p.count, p.oldest]),
      [['stsrc/data', 2, at(72)]],
    );
  },
);

test('sink status (text) 40h before NOW: nothing stale, exit 0', { skip: NEEDS_ROOT }, async () => {
  const r = await baton(['status', '--config', sinkConfig], 40);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /all ok/);
  assert.match(r.stdout, /^ {2}stsrc\/data +sink store: 2 +\S+ +8h 0m +- +0 +ok$/m);
  assert.match(r.stdout, /tier +HostEurope daily snapshot/);
  assert.equal(r.stdout.includes('\u001b['), false, 'no colour when stdout is not a TTY');
});

test(
  'backup and pull 40h before NOW are fresh; a pull at NOW with nothing new alerts stale and exits 1',
  { skip: NEEDS_ROOT },
  async () => {
    // A real backup on the source 40 h before NOW: metrics with downtime, handover count.
    const b = await baton(['source', 'backup', '--config', sourceConfig], 40);
    assert.equal(b.code, 0, show(b));
    const srcProm = join(P.sourceState, 'metrics', 'baton_source_backup.prom');
    const src = await metrics(srcProm);
    const data = { task: 'source_backup', source: 'stsrc', stream: 'data' };
    assert.equal(valueOf(src, 'baton_last_run_success', data), 1);
    const handoverProm = join(P.textfile, 'baton_handover_data.prom');
    const ho = await metrics(handoverProm);
    const hoLabels = { task: 'handover_data', source: 'stsrc', stream: 'data' };
    assert.equal(valueOf(ho, 'baton_generations', { ...hoLabels, store: 'handover' }), 1);
    assert.equal(valueOf(ho, 'baton_generations', { ...hoLabels, store: 'source_store' }), 0);
    assert.ok(
      (valueOf(ho, 'baton_newest_generation_timestamp_seconds', { ...hoLabels, store: 'handover' }) ?? 0) > 0,
    );
    assert.equal(valueOf(src, 'baton_build_info', { task: 'source_backup' }), 1);
    assert.ok((valueOf(src, 'baton_app_downtime_seconds', data) ?? -1) >= 0);
    assert.ok((valueOf(src, 'baton_generation_bytes', data) ?? 0) > 0);
    const backupSuccess = valueOf(src, 'baton_last_success_timestamp_seconds', data) ?? 0;
    assert.ok(Math.abs(backupSuccess * 1000 - (NOW.getTime() - 40 * H)) < 120_000, String(backupSuccess));
    assert.equal(
      await readFile(join(P.textfile, 'baton_source_backup.prom'), 'utf8'),
      await readFile(srcProm, 'utf8'),
    );
    assert.doesNotMatch(await readFile(srcProm, 'utf8'), /\} \S+ \S+$/m, 'no timestamps on samples');

    // A failing backup keeps the last success time and says 0.
    const failing = join(root, 'source-failing.yaml');
    await writeFile(failing, (await readFile(sourceConfig, 'utf8')).replace('stop: "true"', 'stop: "false"'));
    const bf = await baton(['source', 'backup', '--config', failing], 39);
    assert.equal(bf.code, 1, show(bf));
    const src2 = await metrics(srcProm);
    assert.equal(valueOf(src2, 'baton_last_run_success', data), 0);
    assert.equal(valueOf(src2, 'baton_last_success_timestamp_seconds', data), backupSuccess);

    // The source's status: the generation waits in the handover, not overdue yet; the last run failed.
    const { r: ss, report: sr } = await statusJson(sourceConfig, 38);
    assert.equal(ss.code, 1, show(ss));
    assert.deepEqual(
      sr.problems.map((p) => p.kind),
      ['run-failed'],
    );
    assert.equal(sr.streams[0]?.pending.length, 1);
    assert.equal(sr.streams[0]?.pending[0]?.overdue, false);
    // ... and 20 h later it is overdue (transportOverdue 20h).
    const { report: sr2 } = await statusJson(sourceConfig, 19);
    assert.deepEqual(
      sr2.problems.map((p) => p.kind),
      ['run-failed', 'transport-overdue'],
    );

    // The sink pulls it 40 h before NOW: fresh, no mail, exit 0.
    const mailsBefore = smtp.messages.length;
    const p1 = await baton(['sink', 'pull', 'data', '--config', sinkConfig], 38);
    assert.equal(p1.code, 0, show(p1));
    assert.match(p1.stdout, /stsrc\/data: ok: pulled \S+/);
    const sinkProm = join(P.sinkState, 'metrics', 'baton_sink_pull_data.prom');
    const sink1 = await metrics(sinkProm);
    const pull = { task: 'sink_pull_data', source: 'stsrc', stream: 'data' };
    assert.equal(valueOf(sink1, 'baton_last_run_success', pull), 1);
    assert.equal(valueOf(sink1, 'baton_generations', { ...pull, store: 'sink_store' }), 3);
    const pullSuccess = valueOf(sink1, 'baton_last_success_timestamp_seconds', pull) ?? 0;
    assert.ok(Math.abs(pullSuccess * 1000 - (NOW.getTime() - 38 * H)) < 120_000, String(pullSuccess));
    assert.ok(existsSync(join(P.textfile, 'baton_sink_pull_data.prom')));
    assert.ok(
      (valueOf(sink1, 'baton_newest_generation_timestamp_seconds', { ...pull, store: 'sink_store' }) ?? 0) >
        0,
    );
    // The gate refreshed the source's handover metrics after the ack: nothing waits, the store holds it.
    const ho2 = await metrics(handoverProm);
    assert.equal(valueOf(ho2, 'baton_generations', { ...hoLabels, store: 'handover' }), 0);
    assert.equal(valueOf(ho2, 'baton_generations', { ...hoLabels, store: 'source_store' }), 1);

    // At NOW nothing new arrived for 40 h: stale alert mail naming source, stream and age; exit 1.
    const p2 = await baton(['sink', 'pull', 'data', '--config', sinkConfig], 0);
    assert.equal(p2.code, 1, show(p2));
    assert.match(p2.stdout, /stsrc\/data: FAILED: stale: stsrc\/data: no new verified generation for 40h/);
    assert.match(p2.stderr, /^baton: sink pull data: 1 of 1 source\(s\) failed: stsrc: stale: /m);
    const mails = await smtp.waitFor(mailsBefore + 1);
    const stale = mails.slice(mailsBefore);
    assert.equal(stale.length, 1, stale.map((m) => m.subject).join('\n'));
    assert.match(
      stale[0]!.subject,
      /^\[baton\] sink: stsrc\/data STALE: no new verified generation for 40h \d+m$/,
    );
    assert.deepEqual(stale[0]!.to, ['ops@example.com']);
    assert.match(stale[0]!.text, /staleAfter 30h/);
    const sink2 = await metrics(sinkProm);
    assert.equal(valueOf(sink2, 'baton_last_run_success', pull), 0);
    assert.equal(
      valueOf(sink2, 'baton_last_success_timestamp_seconds', pull),
      pullSuccess,
      'kept across a failure',
    );

    // The source saw the ack: its store holds the generation, the handover is empty.
    const { report: sr3 } = await statusJson(sourceConfig, 0);
    assert.deepEqual(
      sr3.streams[0]?.stores.map((s) => [s.kind, s.generations.length]),
      [
        ['handover', 0],
        ['source store', 1],
      ],
    );
  },
);

test(
  'status --html: one self-contained page, screenshot in headless Chromium',
  { skip: NEEDS_ROOT },
  async (t) => {
    const html = join(root, 'report.html');
    const r = await baton(['status', '--config', sinkConfig, '--html', html], 0);
    assert.equal(r.code, 1, show(r)); // still stale at NOW
    const page = await readFile(html, 'utf8');
    assert.match(page, /^<!doctype html>/);
    assert.doesNotMatch(page, /<script|<link|src=|href=|url\(/i);
    assert.match(page, /HostEurope daily snapshot/);
    assert.match(page, /class="problems"/);
    assert.equal((await stat(html)).mode & 0o777, 0o644);
    const bad = await baton(['status', '--config', sinkConfig, '--html', join(root, 'nope', 'x.html')], 0);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /^baton: status: --html .*does not exist$/m);

    const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
    if (chromium === undefined) {
      const reason = 'no chromium (Debian package "chromium"): the screenshot part is skipped';
      process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const shot = join(root, 'report.png');
    const profile = await mkdtemp(join(tmpdir(), 'baton-chromium-'));
    try {
      const c = await runProcess(
        [
          chromium,
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--user-data-dir=${profile}`,
          `--screenshot=${shot}`,
          '--window-size=1200,900',
          `file://${html}`,
        ],
        { timeoutMs: 60_000 },
      );
      assert.ok(existsSync(shot), `chromium wrote no screenshot: exit ${c.code}\n${c.stderr.slice(-2000)}`);
    } finally {
      await rm(profile, { recursive: true, force: true });
    }
    const png = decodePng(await readFile(shot));
    assert.equal(png.width, 1200);
    assert.equal(png.height, 900);
    assert.ok(countColours(png) > 50, `a real page, not blank: ${countColours(png)} colours`);
    assert.ok(countPixelsNear(png, '#dc2626') > 200, 'the stale warning is drawn in red');
    assert.ok(countPixelsNear(png, '#2563eb') > 100, 'sink store generations are drawn as blue dots');
    if (process.env.BATON_KEEP_SCREENSHOT)
      await writeFile(process.env.BATON_KEEP_SCREENSHOT, await readFile(shot));
  },
);
