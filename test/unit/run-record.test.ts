import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatRunRecord,
  MAX_RUN_ERROR_CHARS,
  MAX_RUN_RECORD_ITEMS,
  sinkRunRecordSchema,
  sourceRunRecordSchema,
  type SinkRunRecord,
  type SourceRunRecord,
} from '../../src/core/run-record.js';
import { sinkSchema } from '../../src/config/schema.js';
import { sinkStatus } from '../../src/status/status.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// Run records exactly as the version before the schemas (main at 323e760) wrote them: `baton demo`,
// then a sink pull with the source unreachable and a source backup whose stop command fails.
const OLD_SOURCE_OK = `{
  "job": "source backup",
  "ok": true,
  "startedAt": "2026-12-07T15:45:32.630Z",
  "finishedAt": "2026-12-07T15:45:34.325Z",
  "id": "2026-12-07T154532Z",
  "downtimeMs": 1074,
  "transportFailed": false
}
`;
const OLD_SOURCE_FAILED = `{
  "job": "source backup",
  "ok": false,
  "startedAt": "2026-12-07T15:46:11.029Z",
  "finishedAt": "2026-12-07T15:46:12.396Z",
  "error": "stop-app: stop command \`exit 3\` failed: exit 3"
}
`;
const OLD_SINK_OK = `{
  "job": "sink pull data",
  "source": "demo-app",
  "ok": true,
  "startedAt": "2026-12-07T15:45:34.348Z",
  "finishedAt": "2026-12-07T15:45:40.594Z",
  "pulled": [
    "2026-12-07T154532Z"
  ],
  "pruned": [],
  "quarantined": [],
  "warnings": []
}
`;
const OLD_SINK_FAILED = `{
  "job": "sink pull data",
  "source": "demo-app",
  "ok": false,
  "startedAt": "2026-12-07T15:46:00.512Z",
  "finishedAt": "2026-12-07T15:46:00.795Z",
  "pulled": [],
  "pruned": [],
  "quarantined": [],
  "warnings": [],
  "error": "list: list over ssh nobody@127.0.0.1 port 22 failed: source unreachable: ssh: connect to host 127.0.0.1 port 22: Connection refused"
}
`;
// The first sink version (ff04d3c) wrote no `warnings`.
const FIRST_SINK = JSON.stringify({
  job: 'sink pull logs',
  source: 'shop',
  ok: true,
  startedAt: '2026-11-28T04:30:00.000Z',
  finishedAt: '2026-11-28T04:30:02.000Z',
  pulled: ['2026-11-28T040000Z'],
  pruned: [],
  quarantined: [],
});

test('source run records of the previous version parse, and are written again byte for byte', () => {
  for (const text of [OLD_SOURCE_OK, OLD_SOURCE_FAILED]) {
    const r = sourceRunRecordSchema.parse(JSON.parse(text));
    assert.equal(formatRunRecord(r), text);
  }
});

test('sink run records of the previous version parse, and are written again byte for byte', () => {
  for (const text of [OLD_SINK_OK, OLD_SINK_FAILED]) {
    const r = sinkRunRecordSchema.parse(JSON.parse(text));
    assert.equal(formatRunRecord(r), text);
  }
});

test('a sink run record of the first version (no warnings) parses with no warnings', () => {
  const r = sinkRunRecordSchema.parse(JSON.parse(FIRST_SINK));
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.pulled, ['2026-11-28T040000Z']);
});

test('what the writers build is what the readers parse', () => {
  const source: SourceRunRecord = {
    job: 'source backup',
    ok: true,
    startedAt: '2026-12-07T15:45:32.630Z',
    finishedAt: '2026-12-07T15:45:34.325Z',
    id: '2026-12-07T154532Z',
    downtimeMs: 1074,
    transportFailed: true,
  };
  assert.deepEqual(sourceRunRecordSchema.parse(JSON.parse(formatRunRecord(source))), source);
  const sink: SinkRunRecord = {
    job: 'sink pull logs',
    source: 'shop',
    ok: false,
    startedAt: '2026-12-07T15:45:32.630Z',
    finishedAt: '2026-12-07T15:45:34.325Z',
    pulled: ['2026-12-07T154532Z'],
    pruned: ['2026-12-01T000000Z'],
    quarantined: ['/srv/sink/shop/logs/.quarantine/2026-12-07T154600Z.2026-12-07T154700123Z'],
    warnings: ['size drop'],
    error: 'verify: one\n  two',
  };
  assert.deepEqual(sinkRunRecordSchema.parse(JSON.parse(formatRunRecord(sink))), sink);
});

const okSource = JSON.parse(OLD_SOURCE_OK) as Record<string, unknown>;
const okSink = JSON.parse(OLD_SINK_OK) as Record<string, unknown>;
const hostile: Array<{ name: string; kind: 'source' | 'sink'; raw: unknown }> = [
  { name: 'an array instead of a record', kind: 'source', raw: [] },
  { name: 'null', kind: 'sink', raw: null },
  { name: 'ok as a string', kind: 'source', raw: { ...okSource, ok: 'true' } },
  { name: 'startedAt not an instant', kind: 'source', raw: { ...okSource, startedAt: 'yesterday' } },
  { name: 'finishedAt missing', kind: 'sink', raw: { ...okSink, finishedAt: undefined } },
  { name: 'an id that is a path', kind: 'source', raw: { ...okSource, id: '../../etc/passwd' } },
  { name: 'downtime as a string', kind: 'source', raw: { ...okSource, downtimeMs: '1074' } },
  {
    name: 'an error text over the cap',
    kind: 'source',
    raw: { ...okSource, error: 'x'.repeat(MAX_RUN_ERROR_CHARS + 1) },
  },
  { name: 'no source', kind: 'sink', raw: { ...okSink, source: undefined } },
  { name: 'a pulled name that is not an id', kind: 'sink', raw: { ...okSink, pulled: ['.incoming'] } },
  {
    name: 'more pruned ids than the cap',
    kind: 'sink',
    raw: { ...okSink, pruned: Array.from({ length: MAX_RUN_RECORD_ITEMS + 1 }, () => '2026-12-07T154532Z') },
  },
  { name: 'a quarantined entry that is an object', kind: 'sink', raw: { ...okSink, quarantined: [{}] } },
  { name: 'warnings as a string', kind: 'sink', raw: { ...okSink, warnings: 'size drop' } },
  { name: 'a job name of a megabyte', kind: 'sink', raw: { ...okSink, job: 'j'.repeat(2 ** 20) } },
];

for (const h of hostile) {
  test(`run record with ${h.name} -> refused`, () => {
    const schema = h.kind === 'source' ? sourceRunRecordSchema : sinkRunRecordSchema;
    assert.equal(schema.safeParse(h.raw).success, false);
  });
}

test('baton status reports a hostile sink run record as one line and reads the good one beside it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'baton-run-record-'));
  try {
    const stream = { user: 'u', identity: '/k', generations: 3 };
    const config = sinkSchema.parse({
      store: join(root, 'store'),
      stateDir: join(root, 'state'),
      sources: [
        { name: 'shop', host: '127.0.0.1', knownHosts: '/dev/null', streams: { data: stream } },
        { name: 'demo-app', host: '127.0.0.1', knownHosts: '/dev/null', streams: { data: stream } },
      ],
    });
    await makeSinkStore(config.store);
    await mkdir(join(root, 'state', 'runs'), { recursive: true });
    const bad = join(root, 'state', 'runs', 'shop-data.json');
    await writeFile(bad, JSON.stringify({ ...okSink, pulled: ['../../x\nforged line'] }));
    await writeFile(join(root, 'state', 'runs', 'demo-app-data.json'), OLD_SINK_FAILED);
    const r = await sinkStatus(config, new Date('2026-12-07T16:00:00Z'));
    const problems = r.problems.filter((p) => p.kind === 'run-record');
    assert.deepEqual(
      problems.map((p) => p.message),
      [`${bad} is not a baton run record`],
    );
    assert.deepEqual(
      r.lastRuns.map((l) => [l.source, l.ok, l.error]),
      [['demo-app', false, sinkRunRecordSchema.parse(JSON.parse(OLD_SINK_FAILED)).error]],
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
