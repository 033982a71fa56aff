import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sinkSchema, sourceSchema, type SinkConfig, type SourceConfig } from '../../src/config/schema.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { parseQuarantineName, sinkStatus, sourceStatus } from '../../src/status/status.js';
import { STATUS_FORMAT, type StatusReport } from '../../src/status/report.js';
import { renderStatus } from '../../src/status/render-text.js';
import { renderStatusHtml } from '../../src/status/render-html.js';
import { writeGeneration } from '../helpers/gate-fixtures.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// The documented JSON shape of `baton status --json` (docs/status-json.md), on stores built on disk.
const now = new Date('2026-11-28T06:00:00Z');
const H = 3_600_000;
const idAt = (hoursAgo: number) => formatGenerationId(new Date(now.getTime() - hoursAgo * H));
let root: string;
let sink: SinkConfig;
let source: SourceConfig;

async function gen(
  parent: string,
  hoursAgo: number,
  src: string,
  stream: 'data' | 'logs',
  downtimeMs?: number,
) {
  const g = await writeGeneration(parent, idAt(hoursAgo), {
    source: src,
    stream,
    files: { 'f.txt': 'x'.repeat(100 * (hoursAgo + 1)) },
  });
  if (downtimeMs !== undefined) {
    const metaFile = join(g.dir, 'meta.json');
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>;
    await writeFile(metaFile, JSON.stringify({ ...meta, downtimeMs, bytesCopied: 10 }));
  }
  return g;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-status-unit-'));
  // sink: shop/data stale (newest 48h), shop/logs fresh, blog/data empty; a quarantined generation; tiers
  sink = sinkSchema.parse({
    store: join(root, 'sink'),
    stateDir: join(root, 'sink-state'),
    sources: [
      {
        name: 'shop',
        host: '127.0.0.1',
        knownHosts: '/dev/null',
        streams: {
          data: { user: 'u', identity: '/k', generations: 3 },
          logs: { user: 'u', identity: '/k', generations: 3 },
        },
      },
      {
        name: 'blog',
        host: '127.0.0.1',
        knownHosts: '/dev/null',
        streams: { data: { user: 'u', identity: '/k', generations: 3 } },
      },
    ],
    alerts: { staleAfter: '30h' },
    recoveryTiers: [{ name: '<b>Snap & Co</b>', keepDays: 14, scope: 'whole source filesystem' }],
  });
  await makeSinkStore(sink.store);
  const shopData = join(root, 'sink', 'shop', 'data');
  await gen(shopData, 72, 'shop', 'data', 4000);
  await gen(shopData, 48, 'shop', 'data', 3000);
  await gen(join(root, 'sink', 'shop', 'logs'), 5, 'shop', 'logs');
  await mkdir(join(shopData, '.quarantine', `${idAt(24)}.2026-11-27T060001234Z`), { recursive: true });
  await mkdir(join(shopData, '.incoming', idAt(1)), { recursive: true });
  await mkdir(join(root, 'sink-state', 'runs'), { recursive: true });
  await writeFile(
    join(root, 'sink-state', 'runs', 'shop-data.json'),
    JSON.stringify({
      job: 'sink pull data',
      source: 'shop',
      ok: false,
      startedAt: '2026-11-28T04:00:00.000Z',
      finishedAt: '2026-11-28T04:00:12.500Z',
      pulled: [],
      error: 'list: ssh: connect refused\nsecond line',
    }),
  );
  await writeFile(
    join(root, 'sink-state', 'runs', 'shop-logs.json'),
    JSON.stringify({
      job: 'sink pull logs',
      source: 'shop',
      ok: true,
      startedAt: '2026-11-28T04:30:00.000Z',
      finishedAt: '2026-11-28T04:30:02.000Z',
    }),
  );
  await writeFile(join(root, 'sink-state', 'runs', 'blog-data.json'), '{"job": 1}');

  // source: data handover with one overdue (30h, transportOverdue 20h) and one fresh; store with two
  source = sourceSchema.parse({
    name: 'shop',
    stateDir: join(root, 'src-state'),
    app: { stop: 'true', start: 'true' },
    streams: {
      data: {
        paths: ['/srv/shop'],
        handover: join(root, 'ho-data'),
        user: 'u',
        store: join(root, 'src-store'),
      },
      logs: { paths: ['/var/log/shop'], handover: join(root, 'ho-logs'), user: 'u' },
    },
    alerts: { transportOverdue: '20h' },
  });
  await gen(join(root, 'ho-data'), 30, 'shop', 'data', 2000);
  await gen(join(root, 'ho-data'), 2, 'shop', 'data', 1000);
  await gen(join(root, 'src-store'), 60, 'shop', 'data', 5000);
  await gen(join(root, 'src-store'), 54, 'shop', 'data', 5000);
  await mkdir(join(root, 'src-state'), { recursive: true });
  await writeFile(
    join(root, 'src-state', 'last-run.json'),
    JSON.stringify({
      job: 'source backup',
      ok: true,
      startedAt: '2026-11-28T03:59:58.000Z',
      finishedAt: '2026-11-28T04:00:30.000Z',
      id: idAt(2),
      downtimeMs: 1000,
    }),
  );
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const keys = (o: object) => Object.keys(o).sort();

function assertShape(r: StatusReport): void {
  assert.deepEqual(keys(r), [
    'checks',
    'format',
    'host',
    'lastRuns',
    'name',
    'now',
    'ok',
    'problems',
    'recoveryPoints',
    'runHistory',
    'streams',
  ]);
  assert.equal(r.format, STATUS_FORMAT);
  assert.deepEqual(keys(r.checks), [
    'offsiteStaleAfterSeconds',
    'staleAfterSeconds',
    'transportOverdueSeconds',
  ]);
  for (const s of r.streams) {
    assert.deepEqual(keys(s), [
      'lastRunOk',
      'newest',
      'offsite',
      'pending',
      'quarantined',
      'source',
      'stale',
      'stores',
      'stream',
    ]);
    for (const st of s.stores) {
      assert.deepEqual(keys(st), ['dir', 'generations', 'kind']);
      for (const g of st.generations)
        assert.deepEqual(keys(g), [
          'ageSeconds',
          'bytes',
          'bytesNew',
          'createdAt',
          'downtimeMs',
          'files',
          'id',
          'verified',
        ]);
    }
  }
  for (const run of [...r.lastRuns, ...r.runHistory])
    assert.deepEqual(keys(run), [
      'durationSeconds',
      'error',
      'finishedAt',
      'generation',
      'job',
      'ok',
      'source',
      'startedAt',
      'stream',
    ]);
  for (const p of r.recoveryPoints)
    assert.deepEqual(keys(p), [
      'count',
      'keepDays',
      'kind',
      'name',
      'newest',
      'oldest',
      'scope',
      'source',
      'stream',
    ]);
  for (const p of r.problems) assert.deepEqual(keys(p), ['kind', 'message', 'source', 'stream']);
  // JSON round trip: nothing undefined (a documented shape has every key, null when unknown)
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
}

test('sink status: a store root without its marker (disk not mounted) -> a store-unusable problem first', async () => {
  const marker = join(sink.store, '.baton-store');
  const kept = await readFile(marker);
  await rm(marker);
  try {
    const r = await sinkStatus(sink, now);
    assertShape(r);
    assert.equal(r.ok, false);
    assert.deepEqual(
      [r.problems[0]?.kind, r.problems[0]?.source, r.problems[0]?.stream],
      ['store-unusable', null, null],
    );
    assert.match(
      r.problems[0]?.message ?? '',
      /has no marker file \.baton-store: is its filesystem mounted\?/,
    );
  } finally {
    await writeFile(marker, kept);
  }
});

test('sink status -> documented shape; stale, failed run, bad record, quarantine, tiers', async () => {
  const r = await sinkStatus(sink, now);
  assertShape(r);
  assert.equal(r.host, 'sink');
  assert.equal(r.name, null);
  assert.equal(r.now, now.toISOString());
  assert.equal(r.ok, false);
  assert.deepEqual(r.checks, {
    staleAfterSeconds: 30 * 3600,
    transportOverdueSeconds: null,
    offsiteStaleAfterSeconds: null,
  });
  assert.deepEqual(
    r.streams.map((s) => [
      `${s.source}/${s.stream}`,
      s.stores[0]?.generations.length,
      s.stale?.reason ?? null,
    ]),
    [
      ['shop/data', 2, 'no-new-generation'],
      ['shop/logs', 1, null],
      ['blog/data', 0, null],
    ],
  );
  const shopData = r.streams[0]!;
  assert.deepEqual(shopData.newest, { id: idAt(48), ageSeconds: 48 * 3600 });
  assert.equal(shopData.stale?.ageSeconds, 48 * 3600);
  assert.equal(shopData.stale?.limitSeconds, 30 * 3600);
  const g = shopData.stores[0]!.generations[1]!;
  assert.deepEqual(g, {
    id: idAt(48),
    createdAt: new Date(now.getTime() - 48 * H).toISOString(),
    ageSeconds: 48 * 3600,
    files: 1,
    bytes: 4900,
    bytesNew: 10,
    downtimeMs: 3000,
    verified: true,
  });
  assert.deepEqual(shopData.quarantined, [
    { name: `${idAt(24)}.2026-11-27T060001234Z`, id: idAt(24), quarantinedAt: '2026-11-27T06:00:01.234Z' },
  ]);
  assert.deepEqual(
    r.problems.map((p) => [p.kind, p.source, p.stream]),
    [
      ['run-failed', 'shop', 'data'],
      ['stale', 'shop', 'data'],
      ['run-record', 'blog', 'data'],
    ],
  );
  assert.match(
    r.problems[0]!.message,
    /^sink pull data shop\/data failed at 2026-11-28T04:00:12.500Z: list: ssh: connect refused; second line$/,
  );
  assert.deepEqual(r.lastRuns[0], {
    job: 'sink pull data',
    source: 'shop',
    stream: 'data',
    ok: false,
    startedAt: '2026-11-28T04:00:00.000Z',
    finishedAt: '2026-11-28T04:00:12.500Z',
    durationSeconds: 12.5,
    error: 'list: ssh: connect refused\nsecond line',
    generation: null,
  });
  const tier = r.recoveryPoints.find((p) => p.kind === 'tier');
  assert.deepEqual(tier, {
    kind: 'tier',
    name: '<b>Snap & Co</b>',
    source: null,
    stream: null,
    scope: 'whole source filesystem',
    count: null,
    oldest: '2026-11-14T06:00:00.000Z',
    newest: now.toISOString(),
    keepDays: 14,
  });
  assert.deepEqual(
    r.recoveryPoints.filter((p) => p.kind === 'sink store').map((p) => [p.name, p.count]),
    [
      ['shop/data', 2],
      ['shop/logs', 1],
    ],
  );
});

test('source status -> handover pending with overdue flags, source store verified, last run', async () => {
  const r = await sourceStatus(source, now);
  assertShape(r);
  assert.equal(r.host, 'source');
  assert.equal(r.name, 'shop');
  assert.deepEqual(r.checks, {
    staleAfterSeconds: null,
    transportOverdueSeconds: 20 * 3600,
    offsiteStaleAfterSeconds: null,
  });
  const data = r.streams.find((s) => s.stream === 'data')!;
  assert.deepEqual(
    data.stores.map((s) => [s.kind, s.generations.map((g) => g.verified)]),
    [
      ['handover', [false, false]],
      ['source store', [true, true]],
    ],
  );
  assert.deepEqual(
    data.pending.map((p) => [p.id, p.ageSeconds, p.overdue]),
    [
      [idAt(30), 30 * 3600, true],
      [idAt(2), 2 * 3600, false],
    ],
  );
  assert.equal(data.stale?.reason, 'transport-overdue');
  assert.deepEqual(data.newest, { id: idAt(2), ageSeconds: 7200 });
  assert.deepEqual(
    r.problems.map((p) => [p.kind, p.stream]),
    [['transport-overdue', 'data']],
  );
  assert.equal(r.lastRuns[0]?.generation, idAt(2));
  assert.equal(r.lastRuns[0]?.stream, null);
  assert.equal(r.lastRuns[0]?.durationSeconds, 32);
  const logs = r.streams.find((s) => s.stream === 'logs')!;
  assert.equal(logs.stale, null);
  assert.deepEqual(
    r.recoveryPoints.map((p) => [p.kind, p.name, p.count, p.scope]),
    [
      ['handover', 'shop/data', 2, '/srv/shop'],
      ['source store', 'shop/data', 2, '/srv/shop'],
    ],
  );
});

test('text report -> aligned columns, no colour codes unless asked', async () => {
  const r = await sinkStatus(sink, now);
  const text = renderStatus(r);
  assert.equal(text.includes('\u001b['), false);
  assert.ok(renderStatus(r, { color: true }).includes('\u001b[31m'), 'red when colour is on');
  const lines = text.split('\n');
  const header = lines.findIndex((l) => l.trimStart().startsWith('STREAM '));
  const rows = lines.slice(header, header + 4);
  // every row of the table puts its NEWEST column where the header does
  const at = rows[0]!.indexOf('NEWEST');
  for (const row of rows.slice(1)) assert.match(row.slice(at), /^(20\d\d-|-)/, row);
  assert.match(text, /STALE/);
  assert.match(text, /PROBLEMS\n[^]*✗ shop\/data: no new verified generation for 2d 0h/);
});

test('HTML report -> self-contained, escaped, stale in red', async () => {
  const html = renderStatusHtml(await sinkStatus(sink, now));
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script|<link|src=|href=|url\(/i, 'no scripts, no external assets');
  assert.match(html, /&lt;b&gt;Snap &amp; Co&lt;\/b&gt;/);
  assert.doesNotMatch(html, /<b>Snap/);
  assert.match(html, /<svg[^>]*aria-label="generation timeline"/);
  assert.match(html, /class="problems"/);
  assert.equal((html.match(/<circle /g) ?? []).length, 3, 'one dot per generation');
});

test('quarantine names -> id and time, or nulls when foreign', () => {
  assert.deepEqual(parseQuarantineName('junk'), { name: 'junk', id: null, quarantinedAt: null });
  assert.deepEqual(parseQuarantineName('2026-11-28T061922Z.x'), {
    name: '2026-11-28T061922Z.x',
    id: '2026-11-28T061922Z',
    quarantinedAt: null,
  });
});
