import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { sinkStatus } from '../../src/status/status.js';
import { renderStatusHtml } from '../../src/status/render-html.js';
import { singleLine } from '../../src/errors.js';
import { checkOffsiteLag } from '../../src/sink/check-offsite-lag.js';
import { createLogger } from '../../src/adapters/log.js';
import { runBaton, show } from '../helpers/cli.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { decodePng } from '../helpers/png.js';
import {
  buildFleet,
  VERIFY_ERROR,
  WAITING_SOURCE,
  waitingWindow,
  type Fleet,
} from '../helpers/status-fleet.js';

// `baton status` at fleet size (issue 15) through the built CLI, the HTML page laid out by headless
// Chromium at 1400 px, and the offsite-lag alert (issue 13) over the real SMTP test server.
const now = new Date('2026-11-28T06:00:00Z');
let root: string;
let fleet: Fleet;
let smtp: SmtpSink;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-status-fleet-e2e-'));
  smtp = await startSmtp();
  fleet = await buildFleet(root, { now, offsite: true, smtpUrl: smtp.url });
});

after(async () => {
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

test('CLI: status text starts with PROBLEMS; the baton: line and the problem carry the whole verification detail', async () => {
  const r = await runBaton(['status', '--config', fleet.configFile], {
    env: { BATON_NOW: now.toISOString() },
  });
  assert.equal(r.code, 1, show(r));
  const lines = r.stdout.split('\n');
  assert.equal(lines[2], 'PROBLEMS', r.stdout.slice(0, 400));
  assert.ok(
    lines.some((l) => l.includes(singleLine(VERIFY_ERROR))),
    'the whole verification detail on one line',
  );
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  const j = await runBaton(['status', '--json', '--config', fleet.configFile], {
    env: { BATON_NOW: now.toISOString() },
  });
  assert.ok(j.stdout.includes('60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752'));
});

test('offsiteStaleAfter: the sink alert path mails a lagging offsite copy over SMTP, once per stream', async () => {
  const before = smtp.messages.length;
  const streams = fleet.config.sources.flatMap((s) =>
    (['data', 'logs'] as const).map((stream) => ({ source: s.name, stream, locked: false })),
  );
  const log = createLogger({ format: 'text', level: 'silent' });
  const stale = await checkOffsiteLag(fleet.config, streams, { now: () => now, log });
  assert.deepEqual(
    stale.map((v) => `${v.source}/${v.stream}`),
    ['fleet02/data'],
  );
  const mails = await smtp.waitFor(before + 1);
  const m = mails.slice(before);
  assert.equal(m.length, 1);
  assert.match(
    m[0]!.subject,
    /^\[baton\] sink: fleet02\/data OFFSITE STALE: the offsite copy is 44h 0m behind$/,
  );
  assert.match(m[0]!.text, /offsiteStaleAfter 1d/);
  // without offsiteStaleAfter nothing is checked
  const off = { ...fleet.config, alerts: { ...fleet.config.alerts, offsiteStaleAfter: undefined } };
  assert.deepEqual(await checkOffsiteLag(off, streams, { now: () => now, log }), []);
});

interface Probe {
  width: number;
  pageHeight: number;
  chartsHeight: number;
  errCells: { right: number; scroll: number; client: number }[];
  runsCardOverflow: number;
  waiting: { row: string; text: string; color: string; right: number }[];
}

const PROBE = `<script>
addEventListener('load', () => {
  const h2 = [...document.querySelectorAll('h2')];
  const at = (t) => h2.find((h) => h.textContent.startsWith(t));
  const charts = at('Downtime');
  const next = charts.nextElementSibling;
  const runs = at('Last runs').nextElementSibling;
  const out = {
    width: innerWidth,
    pageHeight: document.documentElement.scrollHeight,
    chartsHeight: next.getBoundingClientRect().height,
    errCells: [...runs.querySelectorAll('td.err')].map((td) => ({ right: td.getBoundingClientRect().right, scroll: td.scrollWidth, client: td.clientWidth })),
    runsCardOverflow: runs.scrollWidth - runs.clientWidth,
    waiting: [...document.querySelectorAll('td.waiting')].map((td) => ({ row: td.parentElement.firstElementChild.textContent, text: td.innerText, color: getComputedStyle(td).color, right: td.getBoundingClientRect().right })),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
});
</script>`;

function chromiumArgs(chromium: string, profile: string, extra: string[]): string[] {
  return [
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
    '--window-size=1400,1000',
    ...extra,
  ];
}

test('HTML at 1400 px in headless Chromium: error column on screen, 24 chart cards compact, a waiting source in amber, page screenshot', async (t) => {
  const html = join(root, 'fleet.html');
  const page = renderStatusHtml(await sinkStatus(fleet.config, now));
  await writeFile(html, page);
  // the probe is the same page with a measuring script appended (the report itself has none)
  const probeFile = join(root, 'probe.html');
  await writeFile(probeFile, page.replace('</body>', `${PROBE}</body>`));
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (chromium === undefined) {
    if (process.env.CI) assert.fail('no chromium in CI');
    t.skip('no chromium (Debian package "chromium")');
    return;
  }
  const profile = await mkdtemp(join(tmpdir(), 'baton-chromium-'));
  try {
    const d = await runProcess(
      chromiumArgs(chromium, profile, ['--dump-dom', '--virtual-time-budget=5000', `file://${probeFile}`]),
      { timeoutMs: 90_000 },
    );
    const m = /<pre id="probe">([^<]*)<\/pre>/.exec(d.stdout);
    assert.ok(m, `no probe output: exit ${d.code}\n${d.stderr.slice(-1500)}`);
    const probe = JSON.parse(m[1]!.replaceAll('&quot;', '"')) as Probe;
    assert.equal(probe.width, 1400);
    assert.ok(probe.errCells.length >= 24, `${probe.errCells.length} error cells`);
    for (const c of probe.errCells) {
      assert.ok(c.right <= probe.width, `the error column ends on screen: ${c.right} > ${probe.width}`);
      assert.ok(c.scroll <= c.client + 1, 'no error text cut off inside its cell');
    }
    assert.ok(
      probe.runsCardOverflow <= 1,
      `the Last runs card does not scroll sideways: ${probe.runsCardOverflow}`,
    );
    // a source outside its pull window: "waiting" in amber with its window, on screen; no other row
    assert.deepEqual(
      probe.waiting.map((w) => w.row),
      [`${WAITING_SOURCE}/data`, `${WAITING_SOURCE}/logs`],
    );
    for (const w of probe.waiting) {
      assert.match(
        w.text,
        new RegExp(`^waiting\\noutside its pull window ${waitingWindow(now)} \\(local time\\)$`),
      );
      assert.equal(w.color, 'rgb(180, 83, 9)', 'amber, neither the red of a problem nor plain ok');
      assert.ok(w.right <= probe.width, `the state column ends on screen: ${w.right}`);
    }
    assert.ok(probe.chartsHeight < 1600, `24 chart cards fit in ${probe.chartsHeight} px (was ~5,700)`);
    const shot = join(root, 'fleet.png');
    await runProcess(chromiumArgs(chromium, profile, [`--screenshot=${shot}`, `file://${html}`]), {
      timeoutMs: 90_000,
    });
    const png = decodePng(await readFile(shot));
    assert.equal(png.width, 1400);
    assert.equal(png.height, 1000);
    if (process.env.BATON_KEEP_SCREENSHOT)
      await writeFile(process.env.BATON_KEEP_SCREENSHOT, await readFile(shot));
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
});
