/**
 * The benchmark's results and their Markdown (bench/RESULTS.md). Pure: no fs, no processes.
 */

export type Unit = 'ms' | 'MiB/s' | 'MiB' | 'µs/file';

/** One side of a figure: what was run and every run's value. */
export interface Side {
  label: string;
  values: number[];
  unit: Unit;
}

export interface Target {
  /** `le`: the ratio (or, with `absolute`, baton's value) must be at most `value`; `ge`: at least */
  op: 'le' | 'ge';
  value: number;
  /** compare baton's own value (e.g. MiB) rather than the ratio */
  absolute?: boolean;
}

export interface Figure {
  id: string;
  title: string;
  baton?: Side;
  plain?: Side;
  target: Target;
  /** why it is missing (not run, failed) */
  missing?: string;
  /** one line shown under the table: where the time or memory goes */
  detail?: string;
}

/** The figure ids every complete report has, in order (the smoke test checks them). */
export const FIGURE_IDS = [
  '1a',
  '1b',
  '2',
  '3',
  '3b',
  '4',
  '5a',
  '5b',
  '5c',
  '5d',
  '6a',
  '6b',
  '6c',
] as const;

export interface MachineInfo {
  cpus: string;
  ramGiB: number;
  fs: string;
  kernel: string;
  node: string;
  rsync: string;
  openssh: string;
  sha256sum: string;
  gnuTime: string;
  /** the baton code measured: `git describe` of the checkout, or why there is none */
  code?: string;
  /** other load on the machine while measuring */
  load: string;
}

export interface Report {
  title: string;
  date: string;
  mode: string;
  command: string;
  durationS: number;
  machine: MachineInfo;
  dataset: string[];
  figures: Figure[];
  details: string[];
  notes: string[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? Number.NaN;
}

function fmt(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return '–';
  switch (unit) {
    case 'ms':
      return v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${(v / 1000).toFixed(2)} s`;
    case 'MiB/s':
      return `${v.toFixed(0)} MiB/s`;
    case 'MiB':
      return `${v.toFixed(0)} MiB`;
    case 'µs/file':
      return `${v.toFixed(v < 10 ? 2 : 1)} µs/file`;
  }
}

function sideText(s: Side | undefined): string {
  if (!s || s.values.length === 0) return '–';
  const m = fmt(median(s.values), s.unit);
  const raw = s.values.length > 1 ? ` (runs: ${s.values.map((v) => fmt(v, s.unit)).join(', ')})` : '';
  return `${s.label}: **${m}**${raw}`;
}

/** baton ÷ plain of the medians, or undefined when a side is missing. */
export function ratioOf(f: Figure): number | undefined {
  if (!f.baton?.values.length || !f.plain?.values.length) return undefined;
  const p = median(f.plain.values);
  return p > 0 ? median(f.baton.values) / p : undefined;
}

export type Verdict = { kind: 'met' } | { kind: 'missed'; by: number } | { kind: 'unknown' };

/** Met or missed, and by how much (a fraction: 0.2 = 20 % past the target). */
export function judge(f: Figure): Verdict {
  const v = f.target.absolute ? (f.baton?.values.length ? median(f.baton.values) : undefined) : ratioOf(f);
  if (v === undefined || !Number.isFinite(v)) return { kind: 'unknown' };
  const ok = f.target.op === 'le' ? v <= f.target.value : v >= f.target.value;
  if (ok) return { kind: 'met' };
  const by = f.target.op === 'le' ? v / f.target.value - 1 : f.target.value / v - 1;
  return { kind: 'missed', by };
}

function targetText(t: Target, unit: Unit | undefined): string {
  const op = t.op === 'le' ? '≤' : '≥';
  return t.absolute ? `${op} ${fmt(t.value, unit ?? 'MiB')}` : `${op} ${t.value}×`;
}

function verdictText(v: Verdict): string {
  switch (v.kind) {
    case 'met':
      return 'met';
    case 'missed':
      return `**missed** by ${(v.by * 100).toFixed(0)} %`;
    case 'unknown':
      return '–';
  }
}

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The Markdown of a report: machine, dataset, one table row per figure, details and notes. */
export function renderReport(r: Report): string {
  const m = r.machine;
  const lines = [
    `# ${r.title}`,
    '',
    `Run ${r.date}, mode **${r.mode}**, \`${r.command}\`, took ${Math.round(r.durationS / 60)} min.`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpus}; RAM: ${m.ramGiB.toFixed(1)} GiB; filesystem: ${m.fs}; kernel ${m.kernel}`,
    `- node ${m.node}; ${m.rsync}; ${m.openssh}; ${m.sha256sum}; ${m.gnuTime}`,
    ...(m.code === undefined ? [] : [`- baton code measured: ${m.code}`]),
    `- ${m.load}`,
    '',
    '## Dataset',
    '',
    ...r.dataset.map((d) => `- ${d}`),
    '',
    '## Figures',
    '',
    'Each figure: baton against the plain tool in the same run on the same data; times are medians',
    '(every run in brackets), the ratio is baton ÷ plain tool. Memory is the peak RSS that',
    '`/usr/bin/time -v` reports (the largest process of the command’s tree).',
    '',
    '| # | figure | baton | plain tool | ratio | target | verdict |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const f of r.figures) {
    const ratio = ratioOf(f);
    const unit = f.baton?.unit;
    if (f.missing !== undefined) {
      lines.push(
        `| ${f.id} | ${cell(f.title)} | ${cell(f.missing)} | – | – | ${targetText(f.target, unit)} | not measured |`,
      );
      continue;
    }
    lines.push(
      `| ${f.id} | ${cell(f.title)} | ${cell(sideText(f.baton))} | ${cell(sideText(f.plain))} | ${
        ratio === undefined ? '–' : `${ratio.toFixed(2)}×`
      } | ${targetText(f.target, unit)} | ${verdictText(judge(f))} |`,
    );
  }
  const withDetail = r.figures.filter((f) => f.detail);
  if (withDetail.length) {
    lines.push('', '## Where the time and memory go', '');
    for (const f of withDetail) lines.push(`- **${f.id}** ${f.detail ?? ''}`);
  }
  if (r.details.length) lines.push('', '## Every measurement', '', ...r.details.map((d) => `- ${d}`));
  if (r.notes.length) lines.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}
