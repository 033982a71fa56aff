import type { StreamName } from './streams.js';

/**
 * Prometheus text exposition for node-exporter's textfile collector: what baton writes after every
 * `source backup`, `sink pull`, `offsite push` and `verify --all` into
 * `<stateDir>/metrics/baton_<task>.prom`. Gauges only, no timestamps on samples (the collector
 * refuses them). The task is the label `task`, never `job` (Prometheus owns `job`: it would be
 * renamed `exported_job` on scrape).
 */

export const METRIC_HELP = {
  baton_last_success_timestamp_seconds:
    'Unix time the last successful run of this job finished for the source/stream (0: never).',
  baton_last_run_duration_seconds: 'Duration of the last run of this job for the source/stream.',
  baton_last_run_success: '1 when the last run of this job succeeded for the source/stream, else 0.',
  baton_generation_bytes: 'Bytes of the newest generation of the source/stream on this host.',
  baton_generation_new_bytes: 'New or changed bytes of the newest generation of the source/stream.',
  baton_generations: 'Complete generations of the source/stream in each store on this host.',
  baton_newest_generation_timestamp_seconds:
    'Unix time the newest generation of the source/stream in each store was created (absent: none).',
  baton_app_downtime_seconds: 'App downtime (stop to started and healthy) of the newest generation.',
  baton_uploaded_bytes: 'Bytes the last offsite push uploaded for the source/stream.',
  baton_uploaded_objects: 'Generations the last offsite push committed for the source/stream.',
  baton_verify_checked_generations: 'Generations of the source/stream the last verify run checked.',
  baton_verify_failed_generations: 'Generations of the source/stream that failed the last verify run.',
  baton_verify_deep: '1 when the last verify run hashed every byte (--deep), else 0.',
  baton_build_info: 'Always 1; the baton version that wrote this file.',
} as const;

export type MetricName = keyof typeof METRIC_HELP;
const METRIC_ORDER = Object.keys(METRIC_HELP) as MetricName[];
const isMetricName = (n: string): n is MetricName => Object.hasOwn(METRIC_HELP, n);

export interface Sample {
  name: MetricName;
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** `task` label value and file name part: `source_backup`, `sink_pull_data`, `sink_pull_logs`, … */
export type MetricsJob =
  | 'source_backup'
  | 'sink_pull_data'
  | 'sink_pull_logs'
  | 'offsite_push'
  | 'verify'
  | 'handover_data'
  | 'handover_logs';

export type MetricsStore = 'handover' | 'source_store' | 'sink_store' | 'offsite';

/** What one job run knows about one source/stream after it ran (or chose not to touch it). */
export interface StreamRunFacts {
  source: string;
  stream: StreamName;
  /**
   * false: this run did not run this stream (another `--source`, a lock held by another run): its
   * run metrics (duration, success, last success) are carried over from the previous file.
   */
  ran: boolean;
  ok: boolean;
  durationSeconds: number;
  finishedAt: Date;
  /** per store: its complete generations (undefined: not counted, e.g. offsite) and the newest one's time */
  stores: ReadonlyArray<{
    store: MetricsStore;
    generations: number | undefined;
    newestAt?: Date | undefined;
  }>;
  /** the newest generation of the stream on this host (its meta.json), if there is one */
  newest: { bytes: number; bytesNew: number; downtimeMs: number | undefined } | undefined;
  /** task-specific values of this run (push: uploaded bytes/objects; verify: checked/failed) */
  extra?: ReadonlyArray<{ name: MetricName; value: number }>;
}

const LABEL_ORDER = ['task', 'source', 'stream', 'store'];

function labelKey(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort((a, b) => {
    const ia = LABEL_ORDER.indexOf(a);
    const ib = LABEL_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : a > b ? 1 : 0);
  });
  return keys.map((k) => `${k}="${escapeLabelValue(labels[k] ?? '')}"`).join(',');
}

/** What a run measures (as opposed to what it finds in the stores): carried over when it did not run. */
const RUN_METRICS: readonly MetricName[] = [
  'baton_last_run_duration_seconds',
  'baton_last_run_success',
  'baton_last_success_timestamp_seconds',
  'baton_uploaded_bytes',
  'baton_uploaded_objects',
  'baton_verify_checked_generations',
  'baton_verify_failed_generations',
  'baton_verify_deep',
];

const sameSeries = (a: Sample, name: MetricName, labels: Readonly<Record<string, string>>): boolean =>
  a.name === name && labelKey(a.labels) === labelKey(labels);

/**
 * Given a job's facts per source/stream and the samples of the previous file, returns the samples
 * of the new file. The last-success time survives failed runs (taken from `previous`; 0 when there
 * never was one); streams the run did not touch keep their previous run metrics.
 */
export function planJobMetrics(
  job: MetricsJob,
  streams: readonly StreamRunFacts[],
  previous: readonly Sample[],
  opts: { appDowntime: boolean; version?: string },
): Sample[] {
  const out: Sample[] = [];
  if (opts.version !== undefined)
    out.push({ name: 'baton_build_info', labels: { task: job, version: opts.version }, value: 1 });
  const prev = (name: MetricName, labels: Record<string, string>) =>
    previous.find((s) => sameSeries(s, name, labels));
  for (const s of streams) {
    const labels = { task: job, source: s.source, stream: s.stream };
    if (s.ran) {
      out.push({ name: 'baton_last_run_duration_seconds', labels, value: s.durationSeconds });
      out.push({ name: 'baton_last_run_success', labels, value: s.ok ? 1 : 0 });
      out.push({
        name: 'baton_last_success_timestamp_seconds',
        labels,
        value: s.ok
          ? s.finishedAt.getTime() / 1000
          : (prev('baton_last_success_timestamp_seconds', labels)?.value ?? 0),
      });
    } else {
      for (const name of RUN_METRICS) {
        const p = prev(name, labels);
        if (p !== undefined) out.push({ name, labels, value: p.value });
      }
    }
    for (const st of s.stores) {
      if (st.generations !== undefined)
        out.push({
          name: 'baton_generations',
          labels: { ...labels, store: st.store },
          value: st.generations,
        });
      if (st.newestAt !== undefined)
        out.push({
          name: 'baton_newest_generation_timestamp_seconds',
          labels: { ...labels, store: st.store },
          value: Math.floor(st.newestAt.getTime() / 1000),
        });
    }
    if (s.ran) for (const x of s.extra ?? []) out.push({ name: x.name, labels, value: x.value });
    if (s.newest !== undefined) {
      out.push({ name: 'baton_generation_bytes', labels, value: s.newest.bytes });
      out.push({ name: 'baton_generation_new_bytes', labels, value: s.newest.bytesNew });
      if (opts.appDowntime && s.newest.downtimeMs !== undefined)
        out.push({ name: 'baton_app_downtime_seconds', labels, value: s.newest.downtimeMs / 1000 });
    }
  }
  return out;
}

function escapeLabelValue(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function unescapeLabelValue(v: string): string {
  return v.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}

/** The text exposition of samples: `# HELP` and `# TYPE gauge` per metric, series sorted, no timestamps. */
export function formatMetrics(samples: readonly Sample[]): string {
  const lines: string[] = [];
  for (const name of METRIC_ORDER) {
    const series = samples
      .filter((s) => s.name === name)
      .map((s) => ({ key: labelKey(s.labels), value: s.value }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (series.length === 0) continue;
    lines.push(`# HELP ${name} ${METRIC_HELP[name]}`, `# TYPE ${name} gauge`);
    for (const s of series) lines.push(`${name}${s.key === '' ? '' : `{${s.key}}`} ${formatValue(s.value)}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The baton samples of a previous `.prom` file; anything else (comments, foreign lines) is ignored. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE_LINE.exec(line);
    if (!m?.[1] || m[3] === undefined || !isMetricName(m[1])) continue;
    const value = Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') continue;
    const labels: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(LABEL_PAIR))
      if (p[1]) labels[p[1]] = unescapeLabelValue(p[2] ?? '');
    out.push({ name: m[1], labels, value });
  }
  return out;
}
