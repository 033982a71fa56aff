import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatMetrics,
  parseMetrics,
  planJobMetrics,
  type Sample,
  type StreamRunFacts,
} from '../../src/core/metrics.js';

const finishedAt = new Date('2026-11-28T06:20:00.500Z');

const data: StreamRunFacts = {
  source: 'shop',
  stream: 'data',
  ran: true,
  ok: true,
  durationSeconds: 42.1234,
  finishedAt,
  stores: [
    { store: 'handover', generations: 1 },
    { store: 'source_store', generations: 3 },
  ],
  newest: { bytes: 1048576, bytesNew: 2048, downtimeMs: 3250 },
};
const logs: StreamRunFacts = {
  ...data,
  stream: 'logs',
  stores: [{ store: 'handover', generations: 1 }],
  newest: { bytes: 512, bytesNew: 512, downtimeMs: 3250 },
};

const GOLDEN = `# HELP baton_last_success_timestamp_seconds Unix time the last successful run of this job finished for the source/stream (0: never).
# TYPE baton_last_success_timestamp_seconds gauge
baton_last_success_timestamp_seconds{task="source_backup",source="shop",stream="data"} 1795846800.5
baton_last_success_timestamp_seconds{task="source_backup",source="shop",stream="logs"} 1795846800.5
# HELP baton_last_run_duration_seconds Duration of the last run of this job for the source/stream.
# TYPE baton_last_run_duration_seconds gauge
baton_last_run_duration_seconds{task="source_backup",source="shop",stream="data"} 42.123
baton_last_run_duration_seconds{task="source_backup",source="shop",stream="logs"} 42.123
# HELP baton_last_run_success 1 when the last run of this job succeeded for the source/stream, else 0.
# TYPE baton_last_run_success gauge
baton_last_run_success{task="source_backup",source="shop",stream="data"} 1
baton_last_run_success{task="source_backup",source="shop",stream="logs"} 1
# HELP baton_generation_bytes Bytes of the newest generation of the source/stream on this host.
# TYPE baton_generation_bytes gauge
baton_generation_bytes{task="source_backup",source="shop",stream="data"} 1048576
baton_generation_bytes{task="source_backup",source="shop",stream="logs"} 512
# HELP baton_generation_new_bytes New or changed bytes of the newest generation of the source/stream.
# TYPE baton_generation_new_bytes gauge
baton_generation_new_bytes{task="source_backup",source="shop",stream="data"} 2048
baton_generation_new_bytes{task="source_backup",source="shop",stream="logs"} 512
# HELP baton_generations Complete generations of the source/stream in each store on this host.
# TYPE baton_generations gauge
baton_generations{task="source_backup",source="shop",stream="data",store="handover"} 1
baton_generations{task="source_backup",source="shop",stream="data",store="source_store"} 3
baton_generations{task="source_backup",source="shop",stream="logs",store="handover"} 1
# HELP baton_app_downtime_seconds App downtime (stop to started and healthy) of the newest generation.
# TYPE baton_app_downtime_seconds gauge
baton_app_downtime_seconds{task="source_backup",source="shop",stream="data"} 3.25
baton_app_downtime_seconds{task="source_backup",source="shop",stream="logs"} 3.25
`;

test('a successful source backup -> the golden .prom text (HELP/TYPE, sorted series, no timestamps)', () => {
  const text = formatMetrics(planJobMetrics('source_backup', [logs, data], [], { appDowntime: true }));
  assert.equal(text, GOLDEN);
});

test('a failed run -> success 0, the previous last-success time kept', () => {
  const previous = parseMetrics(GOLDEN);
  const failed = { ...data, ok: false, durationSeconds: 3, finishedAt: new Date('2026-11-29T06:20:00Z') };
  const samples = planJobMetrics('source_backup', [failed], previous, { appDowntime: true });
  const value = (name: string) => samples.find((s) => s.name === name)?.value;
  assert.equal(value('baton_last_run_success'), 0);
  assert.equal(value('baton_last_run_duration_seconds'), 3);
  assert.equal(value('baton_last_success_timestamp_seconds'), 1795846800.5);
});

test('a failed first run -> last success 0 (never)', () => {
  const samples = planJobMetrics('sink_pull_data', [{ ...data, ok: false }], [], { appDowntime: false });
  assert.equal(samples.find((s) => s.name === 'baton_last_success_timestamp_seconds')?.value, 0);
  assert.equal(
    samples.some((s) => s.name === 'baton_app_downtime_seconds'),
    false,
    'no downtime on the sink',
  );
});

test('a stream the run did not touch -> its previous run metrics carried over, stores fresh', () => {
  const prevText = formatMetrics(
    planJobMetrics('sink_pull_data', [{ ...data, source: 'blog', durationSeconds: 7 }], [], {
      appDowntime: false,
    }),
  );
  const skipped: StreamRunFacts = {
    ...data,
    source: 'blog',
    ran: false,
    ok: false,
    durationSeconds: 0,
    stores: [{ store: 'sink_store', generations: 9 }],
  };
  const samples = planJobMetrics('sink_pull_data', [skipped], parseMetrics(prevText), { appDowntime: false });
  const value = (name: string) => samples.find((s) => s.name === name)?.value;
  assert.equal(value('baton_last_run_success'), 1);
  assert.equal(value('baton_last_run_duration_seconds'), 7);
  assert.equal(value('baton_last_success_timestamp_seconds'), 1795846800.5);
  assert.equal(value('baton_generations'), 9);
});

test('a stream with no generation -> no size samples, counts 0', () => {
  const samples = planJobMetrics(
    'sink_pull_logs',
    [{ ...data, stream: 'logs', stores: [{ store: 'sink_store', generations: 0 }], newest: undefined }],
    [],
    { appDowntime: false },
  );
  assert.deepEqual(
    samples.filter((s) => s.name.startsWith('baton_generation')).map((s) => [s.name, s.value]),
    [['baton_generations', 0]],
  );
});

test('label values are escaped and parse back; foreign and malformed lines are ignored', () => {
  const odd: Sample = {
    name: 'baton_generations',
    labels: { task: 'sink_pull_data', source: 'we"ird\\name\nx', stream: 'data', store: 'sink_store' },
    value: 2,
  };
  const text = formatMetrics([odd]);
  assert.match(text, /source="we\\"ird\\\\name\\nx"/);
  assert.deepEqual(parseMetrics(`${text}node_load1 3\nbaton_generations{task="x"} notanumber\ngarbage\n`), [
    odd,
  ]);
});

test('nothing to report -> empty file', () => {
  assert.equal(formatMetrics([]), '');
});

test('no sample carries a label named job (Prometheus owns it); the task is the label task', () => {
  const samples = planJobMetrics('source_backup', [data], [], { appDowntime: true, version: '1.2.3' });
  assert.ok(samples.length > 0);
  for (const s of samples) {
    assert.equal(Object.hasOwn(s.labels, 'job'), false, s.name);
    assert.equal(s.labels.task, 'source_backup', s.name);
  }
});

test('baton_build_info{task,version} 1 and the new-bytes metric named with its unit last', () => {
  const text = formatMetrics(
    planJobMetrics('sink_pull_data', [data], [], { appDowntime: false, version: '1.2.3' }),
  );
  assert.match(text, /^baton_build_info\{task="sink_pull_data",version="1\.2\.3"\} 1$/m);
  assert.match(text, /^baton_generation_new_bytes\{/m);
  assert.doesNotMatch(text, /baton_generation_bytes_new/);
});

test('the newest generation time per store -> baton_newest_generation_timestamp_seconds{store}', () => {
  const at = new Date('2026-11-28T06:19:22Z');
  const samples = planJobMetrics(
    'offsite_push',
    [
      {
        ...data,
        stores: [
          { store: 'offsite', generations: undefined, newestAt: at },
          { store: 'sink_store', generations: 2 },
        ],
      },
    ],
    [],
    { appDowntime: false },
  );
  const newest = samples.filter((s) => s.name === 'baton_newest_generation_timestamp_seconds');
  assert.deepEqual(newest, [
    {
      name: 'baton_newest_generation_timestamp_seconds',
      labels: { task: 'offsite_push', source: 'shop', stream: 'data', store: 'offsite' },
      value: at.getTime() / 1000,
    },
  ]);
  assert.equal(
    samples.some((s) => s.name === 'baton_generations' && s.labels.store === 'offsite'),
    false,
    'no count where none was taken',
  );
});

test('push and verify values of a run are written, and carried over for a stream the run skipped', () => {
  const pushed: StreamRunFacts = {
    ...data,
    extra: [
      { name: 'baton_uploaded_bytes', value: 4096 },
      { name: 'baton_uploaded_objects', value: 2 },
    ],
  };
  const first = formatMetrics(planJobMetrics('offsite_push', [pushed], [], { appDowntime: false }));
  assert.match(first, /^baton_uploaded_bytes\{task="offsite_push",source="shop",stream="data"\} 4096$/m);
  const skipped = planJobMetrics('offsite_push', [{ ...data, ran: false }], parseMetrics(first), {
    appDowntime: false,
  });
  assert.equal(skipped.find((s) => s.name === 'baton_uploaded_objects')?.value, 2);
});
