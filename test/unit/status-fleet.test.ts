import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { sinkStatus } from '../../src/status/status.js';
import type { StatusReport } from '../../src/status/report.js';
import { renderStatus } from '../../src/status/render-text.js';
import { assignLanes, generationLabels, renderStatusHtml } from '../../src/status/render-html.js';
import { singleLine } from '../../src/errors.js';
import { judgeOffsiteLag } from '../../src/core/offsite-lag.js';
import { nextRunHistory, RUN_HISTORY_MAX, runHistoryFile } from '../../src/core/run-record.js';
import { writeRunRecord } from '../../src/adapters/run-history.js';
import { buildFleet, CONNECT_ERROR, VERIFY_ERROR, type Fleet } from '../helpers/status-fleet.js';

// `baton status` at fleet size (issue 15): 12 sources × 2 streams on disk, one failed pull, one
// verification failure, an offsite tier (issue 13).
const now = new Date('2026-11-28T06:00:00Z');
let root: string;
let fleet: Fleet;
let report: StatusReport;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-status-fleet-'));
  fleet = await buildFleet(root, { now, offsite: true });
  report = await sinkStatus(fleet.config, now);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const stream = (name: string) => report.streams.find((s) => `${s.source}/${s.stream}` === name)!;

test('fleet: 24 streams; a stream whose last pull FAILED is FAILED in the STREAMS table, never "ok"', () => {
  assert.equal(report.streams.length, 24);
  assert.equal(stream('fleet07/data').lastRunOk, false);
  assert.equal(stream('fleet03/data').lastRunOk, false);
  assert.equal(stream('fleet01/data').lastRunOk, true);
  const text = renderStatus(report);
  const row = (name: string) => text.split('\n').find((l) => l.startsWith(`  ${name} `)) ?? '';
  assert.match(row('fleet07/data'), /FAILED$/);
  assert.match(row('fleet03/data'), /FAILED$/);
  assert.match(row('fleet01/data'), / ok$/);
  assert.match(row('fleet07/logs'), / ok$/);
});

test('fleet: PROBLEMS comes first in the text, before STREAMS', () => {
  const text = renderStatus(report);
  const problems = text.indexOf('\nPROBLEMS\n');
  assert.ok(problems > 0, 'a PROBLEMS section');
  assert.ok(problems < text.indexOf('\nSTREAMS\n'), 'PROBLEMS before STREAMS');
  assert.match(text.split('\n')[0] ?? '', /problem\(s\)/);
});

test('fleet: the verification failure reads whole (file and both hashes) in the problem, text, JSON and HTML', () => {
  const whole = singleLine(VERIFY_ERROR);
  assert.ok(!whole.includes('\n'));
  const p = report.problems.find((x) => x.kind === 'run-failed' && x.source === 'fleet03');
  assert.ok(p);
  for (const part of [
    'not acked): content: db/orders.db',
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    '60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752',
    'rejected on the source',
  ]) {
    assert.ok(p.message.includes(part), `problem line has ${part}: ${p.message}`);
    const json = JSON.parse(JSON.stringify(report)) as StatusReport;
    assert.ok(
      json.problems.some((q) => q.message.includes(part)),
      `JSON problem has ${part}`,
    );
    const text = renderStatus(report);
    const line = text.split('\n').find((l) => l.includes('fleet03/data failed at'));
    assert.ok(line?.includes(part), `text problem line has ${part}`);
    assert.ok(renderStatusHtml(report).includes(part), `HTML has ${part}`);
  }
  assert.ok(!p.message.includes('\n'), 'one line');
  assert.ok(report.problems.some((x) => x.message.endsWith(CONNECT_ERROR)));
});

test('singleLine: joins every line, nothing cut, no newline left (property)', () => {
  assert.equal(singleLine('a (not acked):\n  x: 1\n\n  y: 2\n'), 'a (not acked): x: 1; y: 2');
  fc.assert(
    fc.property(fc.array(fc.string(), { maxLength: 8 }), (lines) => {
      const out = singleLine(lines.join('\n'));
      assert.ok(!/[\r\n]/.test(out));
      for (const l of lines) if (l.trim() !== '' && !/[\r\n]/.test(l)) assert.ok(out.includes(l.trim()));
    }),
  );
});

test('offsite tier: newest commit and age per stream, lag over offsiteStaleAfter and a failed push are problems', () => {
  assert.equal(report.checks.offsiteStaleAfterSeconds, 86_400);
  const ok = stream('fleet01/data').offsite;
  assert.ok(ok);
  assert.equal(ok.newest?.ageSeconds, 2 * 3600);
  assert.equal(ok.lagSeconds, 0);
  assert.equal(ok.stale, false);
  assert.equal(ok.checkedAt, new Date(now.getTime() - 3_600_000).toISOString());
  const behind = stream('fleet02/data').offsite;
  assert.equal(behind?.stale, true);
  assert.equal(behind?.lagSeconds, 44 * 3600);
  const failed = stream('fleet05/logs').offsite;
  assert.match(failed?.lastError ?? '', /403 AccessDenied/);
  assert.deepEqual(
    report.problems
      .filter((p) => p.kind.startsWith('offsite'))
      .map((p) => [p.kind, `${p.source}/${p.stream}`]),
    [
      ['offsite-stale', 'fleet02/data'],
      ['offsite-push-failed', 'fleet05/logs'],
    ],
  );
  assert.match(
    report.problems.find((p) => p.kind === 'offsite-stale')?.message ?? '',
    /^fleet02\/data: the offsite copy lags the sink store by 44h 0m \(.*offsiteStaleAfter 1d\)$/,
  );
  const point = report.recoveryPoints.find((p) => p.kind === 'offsite' && p.name === 'fleet01/data');
  assert.equal(point?.newest, new Date(now.getTime() - 2 * 3_600_000).toISOString());
  assert.match(point?.scope ?? '', /^s3:\/\/baton-fleet\/sink1 /);
  const text = renderStatus(report);
  assert.match(text, /\nOFFSITE\n/);
  assert.match(text, /fleet05\/logs .*FAILED .*403 AccessDenied/);
  assert.match(text, /offsite +fleet01\/data/);
  assert.match(renderStatusHtml(report), /<h2>Offsite copy<\/h2>/);
});

test('judgeOffsiteLag: no commit counts from the oldest sink generation; an empty store never lags', () => {
  const at = (h: number) => ({ id: 'x', createdAt: new Date(now.getTime() - h * 3_600_000) });
  const base = { source: 's', stream: 'data' as const };
  const lim = 24 * 3_600_000;
  assert.equal(
    judgeOffsiteLag(
      { ...base, sinkOldest: undefined, sinkNewest: undefined, offsiteNewest: undefined },
      now,
      lim,
    ).stale,
    false,
  );
  assert.equal(
    judgeOffsiteLag({ ...base, sinkOldest: at(30), sinkNewest: at(1), offsiteNewest: undefined }, now, lim)
      .stale,
    true,
  );
  assert.equal(
    judgeOffsiteLag({ ...base, sinkOldest: at(3), sinkNewest: at(1), offsiteNewest: undefined }, now, lim)
      .stale,
    false,
  );
  assert.equal(
    judgeOffsiteLag(
      { ...base, sinkOldest: at(90), sinkNewest: at(1), offsiteNewest: '2026-11-27T060000Z' },
      now,
      lim,
    ).stale,
    false,
  );
  assert.equal(
    judgeOffsiteLag(
      { ...base, sinkOldest: at(90), sinkNewest: at(1), offsiteNewest: '2026-11-27T045959Z' },
      now,
      lim,
    ).stale,
    true,
  );
});

test('run history: the last 30 runs per job in the report, oldest first; the writer caps the file at 30', async () => {
  const hist = report.runHistory.filter((r) => r.source === 'fleet07' && r.stream === 'data');
  assert.equal(hist.length, RUN_HISTORY_MAX);
  assert.equal(hist.at(-1)?.ok, false);
  assert.ok(hist.every((r, i) => i === 0 || r.finishedAt > hist[i - 1]!.finishedAt));
  const file = join(root, 'w', 'run.json');
  await import('node:fs/promises').then((f) => f.mkdir(join(root, 'w')));
  for (let i = 0; i < 33; i++)
    await writeRunRecord(file, {
      job: 'source backup',
      ok: i % 2 === 0,
      startedAt: new Date(now.getTime() + i * 1000).toISOString(),
      finishedAt: new Date(now.getTime() + i * 1000 + 500).toISOString(),
    });
  const written = JSON.parse(await readFile(runHistoryFile(file), 'utf8')) as {
    runs: { startedAt: string }[];
  };
  assert.equal(written.runs.length, RUN_HISTORY_MAX);
  assert.equal(written.runs.at(-1)?.startedAt, new Date(now.getTime() + 32_000).toISOString());
  assert.deepEqual(
    nextRunHistory('junk', {
      job: 'j',
      ok: true,
      startedAt: now.toISOString(),
      finishedAt: now.toISOString(),
    }).runs.length,
    1,
  );
  const html = renderStatusHtml(report);
  assert.ok((html.match(/<rect class="run /g) ?? []).length >= 24 * RUN_HISTORY_MAX, 'a square per run');
});

test('HTML: failed streams marked in timeline and cards; logs cards have no downtime chart; labels and dots stay apart', () => {
  const html = renderStatusHtml(report);
  assert.equal(
    (html.match(/<g class="fail-mark"/g) ?? []).length,
    2,
    'a red cross on each failed stream row',
  );
  assert.ok((html.match(/class="card failed"/g) ?? []).length >= 2);
  assert.equal(
    (html.match(/aria-label="app downtime per generation"/g) ?? []).length,
    12,
    'data streams only',
  );
  assert.equal((html.match(/aria-label="new bytes per generation"/g) ?? []).length, 24);
  // bars: labels of one chart are never identical (two generations 6 s apart)
  for (const svg of html.match(/<svg[^>]*aria-label="new bytes per generation"[^]*?<\/svg>/g) ?? []) {
    const labels = [...svg.matchAll(/<text class="lbl"[^>]*>([^<]*)</g)].map((m) => m[1]);
    assert.equal(new Set(labels).size, labels.length, labels.join(' | '));
  }
  // timeline: no two dots of a row drawn on top of each other
  const circles = [...html.matchAll(/<circle class="gen" cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
  assert.equal(circles.length, 24 * 5);
  for (let i = 0; i < circles.length; i++)
    for (let j = i + 1; j < circles.length; j++) {
      const [a, b] = [circles[i]!, circles[j]!];
      assert.ok(
        Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!) >= 6,
        `dots ${i} and ${j} overlap: ${a.join(',')} ${b.join(',')}`,
      );
    }
  assert.equal((html.match(/<path class="offsite"/g) ?? []).length, 24);
  assert.doesNotMatch(html, />\?</, 'no "?" drawn for an unknown or empty value');
});

test('generationLabels / assignLanes: unique labels; overlapping x get different lanes (property)', () => {
  assert.deepEqual(generationLabels(['2026-11-28T040000Z', '2026-11-28T040006Z']), [
    '11-28 04:00:00',
    '11-28 04:00:06',
  ]);
  assert.deepEqual(generationLabels(['2026-11-27T040000Z', '2026-11-28T040006Z']), ['11-27', '11-28']);
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc
          .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
          .map((d) => d.toISOString()),
        { maxLength: 20 },
      ),
      (isos) => {
        const ids = isos.map(
          (i) => `${i.slice(0, 10)}T${i.slice(11, 13)}${i.slice(14, 16)}${i.slice(17, 19)}Z`,
        );
        const labels = generationLabels([...new Set(ids)]);
        assert.equal(new Set(labels).size, labels.length);
      },
    ),
  );
  assert.deepEqual(assignLanes([100, 100.01, 300], 13), [0, 1, 0]);
});
