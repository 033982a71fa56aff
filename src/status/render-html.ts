import { singleLine } from '../errors.js';
import { formatAge, formatDuration } from '../core/duration.js';
import type { GenerationReport, RunReport, StatusReport, StoreKind, StreamReport } from './report.js';
import {
  formatBytes,
  formatDowntime,
  formatInstant,
  formatRunDuration,
  streamFlags,
  streamState,
} from './format.js';

/**
 * `baton status --html FILE`: one self-contained page (inline CSS and SVG, no scripts, no external
 * assets) — a timeline of generations per source/stream with the recovery tiers as bands, downtime
 * and new bytes per generation, the stores, the last runs, and the problems in red.
 */

const esc = (s: string): string =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

const STORE_COLOUR: Record<StoreKind, string> = {
  'sink store': '#2563eb',
  'source store': '#059669',
  handover: '#d97706',
};
const TIER_COLOURS = ['#a78bfa', '#f472b6', '#60a5fa', '#34d399'];
const RED = '#dc2626';
/** a source outside its pull window: not a problem, not ok either (the text report's yellow) */
const WAITING = '#b45309';
const OFFSITE = '#7c3aed';
const GREEN = '#16a34a';
const DAY = 86_400_000;

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#6b7280;margin-bottom:16px}
.ok{display:inline-block;background:#dcfce7;color:#166534;border-radius:4px;padding:2px 8px;font-weight:600}
.bad{display:inline-block;background:#fee2e2;color:${RED};border-radius:4px;padding:2px 8px;font-weight:600}
.problems{border:2px solid ${RED};background:#fef2f2;color:${RED};border-radius:6px;padding:10px 16px;margin:12px 0}
.problems li{margin:2px 0;font-weight:600}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:12px 16px;margin:10px 0;overflow-x:auto}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 10px;text-align:left;white-space:nowrap}
th{color:#6b7280;font-weight:600;border-bottom:1px solid #e5e7eb}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.stale td,td.stale,span.stale,div.stale{color:${RED};font-weight:600}
td.waiting{color:${WAITING};font-weight:600}td.waiting .why{font-weight:400;font-size:11px}
.legend span{display:inline-block;margin-right:16px}.sw{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:5px;vertical-align:middle}
code{font-size:12px;color:#374151}td.dir{white-space:normal;word-break:break-all;min-width:220px}
svg text{font-family:system-ui,sans-serif}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:8px}
.grid .card{margin:0;padding:6px 10px;overflow:hidden}.grid h3{margin:0 0 2px;font-size:13px}
.card.failed{border:2px solid ${RED}}.flags{color:${RED};font-weight:700;font-size:12px}
table.runs{width:100%}td.err{white-space:normal;overflow-wrap:anywhere;color:${RED};min-width:320px}
.hist td{padding:1px 10px}
`;

const DOT_R = 6;
/** Dots that would overlap move to a lane above or below the row's line, so close generations stay apart. */
const LANE_OFFSETS = [0, -8, 8];

/**
 * Lane per x (in the order given): the first lane whose last dot is at least `gap` to the left, else
 * the lane whose last dot is furthest left. Pure.
 */
export function assignLanes(xs: readonly number[], gap: number): number[] {
  const order = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const lastX = LANE_OFFSETS.map(() => Number.NEGATIVE_INFINITY);
  const out = xs.map(() => 0);
  for (const { x, i } of order) {
    let lane = lastX.findIndex((l) => x - l >= gap);
    if (lane < 0) lane = lastX.indexOf(Math.min(...lastX));
    lastX[lane] = x;
    out[i] = lane;
  }
  return out;
}

function timeline(r: StatusReport): string {
  const now = Date.parse(r.now);
  const tiers = r.recoveryPoints.filter((p) => p.kind === 'tier');
  const times = r.streams.flatMap((s) =>
    s.stores.flatMap((st) => st.generations.map((g) => Date.parse(g.createdAt))),
  );
  const starts = [...times, ...tiers.map((t) => Date.parse(t.oldest ?? r.now)), now - DAY];
  const span0 = Math.min(...starts);
  const pad = Math.max((now - span0) * 0.03, 3_600_000);
  const t0 = span0 - pad;
  const t1 = now + pad;
  const left = 170;
  const width = 1100;
  const right = 20;
  const rowH = 34;
  const top = 24 + tiers.length * 16;
  const height = top + Math.max(1, r.streams.length) * rowH + 34;
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const parts: string[] = [];
  // tier bands behind everything
  tiers.forEach((t, i) => {
    const colour = TIER_COLOURS[i % TIER_COLOURS.length] ?? '#a78bfa';
    const a = x(Date.parse(t.oldest ?? r.now));
    const b = x(now);
    parts.push(
      `<rect x="${a.toFixed(1)}" y="${top - 6}" width="${Math.max(1, b - a).toFixed(1)}" height="${(height - top - 28).toFixed(1)}" fill="${colour}" fill-opacity="0.16" stroke="${colour}" stroke-opacity="0.6"><title>${esc(`${t.name}: ${t.keepDays ?? '?'} days, ${t.scope}`)}</title></rect>`,
      `<text x="${(a + 4).toFixed(1)}" y="${14 + i * 16}" font-size="12" fill="${colour}" font-weight="600">${esc(`${t.name} — ${t.keepDays ?? '?'} days, ${t.scope}`)}</text>`,
      `<line x1="${a.toFixed(1)}" x2="${a.toFixed(1)}" y1="${18 + i * 16}" y2="${top - 6}" stroke="${colour}"/>`,
    );
  });
  // axis with ticks: days when the span is long, else every 6 hours
  const axisY = height - 26;
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${axisY}" y2="${axisY}" stroke="#9ca3af"/>`);
  const spanDays = (t1 - t0) / DAY;
  const step = spanDays > 40 ? 7 * DAY : spanDays > 3 ? DAY : 6 * 3_600_000;
  for (let t = Math.ceil(t0 / step) * step, n = 0; t <= t1 && n < 200; t += step, n++) {
    const iso = new Date(t).toISOString();
    const label = step >= DAY ? iso.slice(5, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;
    parts.push(
      `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${top - 8}" y2="${axisY + 4}" stroke="#e5e7eb"/>`,
      `<text x="${x(t).toFixed(1)}" y="${axisY + 17}" font-size="11" fill="#6b7280" text-anchor="middle">${label}</text>`,
    );
  }
  parts.push(
    `<line x1="${x(now).toFixed(1)}" x2="${x(now).toFixed(1)}" y1="${top - 8}" y2="${axisY}" stroke="#111827" stroke-dasharray="3,3"/>`,
    `<text x="${x(now).toFixed(1)}" y="${top - 10}" font-size="11" text-anchor="end" fill="#111827">now</text>`,
  );
  r.streams.forEach((s, i) => {
    const y = top + i * rowH + rowH / 2;
    const flags = streamFlags(s);
    const bad = flags.length > 0;
    const colour = bad ? RED : '#111827';
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="${bad ? '#fee2e2' : '#f3f4f6'}" stroke-width="${rowH - 10}"/>`,
      `<text x="${left - 10}" y="${y + 4}" font-size="13" text-anchor="end" fill="${colour}" font-weight="${bad ? 700 : 500}">${esc(`${s.source}/${s.stream}`)}${bad ? ' ⚠' : ''}<title>${esc(bad ? flags.join(', ') : 'ok')}</title></text>`,
    );
    if (s.stale && s.newest) {
      const from = x(now - s.newest.ageSeconds * 1000);
      parts.push(
        `<line x1="${from.toFixed(1)}" x2="${x(now).toFixed(1)}" y1="${y}" y2="${y}" stroke="${RED}" stroke-width="2" stroke-dasharray="5,3"><title>${esc(s.stale.message)}</title></line>`,
      );
    }
    const overdue = new Set(s.pending.filter((p) => p.overdue).map((p) => p.id));
    const dots = s.stores.flatMap((st) =>
      st.generations.map((g) => ({ st, g, cx: x(Date.parse(g.createdAt)) })),
    );
    const lanes = assignLanes(
      dots.map((d) => d.cx),
      DOT_R * 2 + 1,
    );
    dots.forEach(({ st, g, cx }, k) => {
      const cy = y + (LANE_OFFSETS[(lanes[k] ?? 0) % LANE_OFFSETS.length] ?? 0);
      const fill = g.bad === true ? RED : st.kind === 'handover' ? '#fff' : STORE_COLOUR[st.kind];
      const stroke = overdue.has(g.id) || g.bad === true ? RED : STORE_COLOUR[st.kind];
      parts.push(
        `<circle class="gen" cx="${cx.toFixed(1)}" cy="${cy}" r="${DOT_R}" fill="${fill}" stroke="${stroke}" stroke-width="2"><title>${esc(`${g.id} — ${st.kind}, ${formatAge(g.ageSeconds * 1000)} old, ${formatBytes(g.bytes)}, ${formatBytes(g.bytesNew)} new${g.downtimeMs === null ? '' : `, downtime ${formatDowntime(g.downtimeMs)}`}${g.bad === true ? ', DAMAGED' : ''}`)}</title></circle>`,
      );
    });
    const o = s.offsite?.newest;
    if (o) {
      const ox = x(Date.parse(o.createdAt));
      parts.push(
        `<path class="offsite" d="M${ox.toFixed(1)} ${y - 9}l5 5l-5 5l-5-5z" fill="${s.offsite?.stale || s.offsite?.lastError ? RED : OFFSITE}"><title>${esc(`offsite: ${o.id}, ${formatAge(o.ageSeconds * 1000)} old${s.offsite?.lastError ? `; last push FAILED: ${singleLine(s.offsite.lastError)}` : ''}`)}</title></path>`,
      );
    }
    const failed = r.lastRuns.find(
      (run) => !run.ok && run.source === s.source && (run.stream === null || run.stream === s.stream),
    );
    if (failed) {
      const fx = Math.min(x(Date.parse(failed.finishedAt)), x(now));
      parts.push(
        `<g class="fail-mark" stroke="${RED}" stroke-width="3"><line x1="${(fx - 6).toFixed(1)}" x2="${(fx + 6).toFixed(1)}" y1="${y - 6}" y2="${y + 6}"/><line x1="${(fx - 6).toFixed(1)}" x2="${(fx + 6).toFixed(1)}" y1="${y + 6}" y2="${y - 6}"/><title>${esc(`${failed.job} FAILED at ${failed.finishedAt}: ${singleLine(failed.error ?? '')}`)}</title></g>`,
      );
    }
  });
  const legend =
    (['sink store', 'source store', 'handover'] as const)
      .filter((k) => r.streams.some((s) => s.stores.some((st) => st.kind === k)))
      .map(
        (k) =>
          `<span><i class="sw" style="background:${k === 'handover' ? '#fff' : STORE_COLOUR[k]};border:2px solid ${STORE_COLOUR[k]}"></i>${k}${k === 'handover' ? ' (pending)' : ''}</span>`,
      )
      .join('') +
    (r.streams.some((s) => s.offsite?.newest)
      ? `<span><i class="sw" style="background:${OFFSITE};border-radius:0;transform:rotate(45deg)"></i>newest offsite commit</span>`
      : '') +
    (r.lastRuns.some((run) => !run.ok) ? `<span style="color:${RED}">✗ last run FAILED</span>` : '');
  return (
    `<div class="card"><svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="generation timeline">${parts.join('')}</svg>` +
    `<div class="legend">${legend}${tiers.length ? '<span>shaded bands: recovery tiers (not managed by baton)</span>' : ''}</div></div>`
  );
}

/** Distinct generations of a stream across its stores, oldest first. */
function generationsOf(s: StreamReport): GenerationReport[] {
  const byId = new Map<string, GenerationReport>();
  for (const st of s.stores) for (const g of st.generations) if (!byId.has(g.id)) byId.set(g.id, g);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Labels for generation ids, as short as keeps them apart: `MM-DD`, else `MM-DD HH:MM`, else with
 * seconds, else the whole id (two generations 6 s apart never carry the same label).
 */
export function generationLabels(ids: readonly string[]): string[] {
  const formats = [
    (id: string) => id.slice(5, 10),
    (id: string) => `${id.slice(5, 10)} ${id.slice(11, 13)}:${id.slice(13, 15)}`,
    (id: string) => `${id.slice(5, 10)} ${id.slice(11, 13)}:${id.slice(13, 15)}:${id.slice(15, 17)}`,
  ];
  for (const f of formats) {
    const labels = ids.map(f);
    if (new Set(labels).size === labels.length) return labels;
  }
  return [...ids];
}

/** A small bar chart (one bar per generation; a title on each bar), sized for a grid card. */
function barChart(
  title: string,
  gens: readonly GenerationReport[],
  value: (g: GenerationReport) => number | null,
  format: (v: number) => string,
  colour: string,
): string {
  const w = 300;
  const h = 74;
  const left = 4;
  const bottom = 14;
  const top = 16;
  const vals = gens.map(value);
  const max = Math.max(0, ...vals.map((v) => v ?? 0));
  const slot = (w - left * 2) / Math.max(1, gens.length);
  const bw = Math.max(1, Math.min(20, slot * 0.7));
  const labels = generationLabels(gens.map((g) => g.id));
  const parts = [
    `<text x="${left}" y="11" font-size="11" font-weight="600" fill="#374151">${esc(title)}</text>`,
    `<text x="${w - left}" y="11" font-size="10" text-anchor="end" fill="#6b7280">max ${esc(max > 0 ? format(max) : '-')}</text>`,
    `<line x1="${left}" x2="${w - left}" y1="${h - bottom}" y2="${h - bottom}" stroke="#9ca3af"/>`,
  ];
  gens.forEach((g, i) => {
    const v = vals[i] ?? null;
    const cx = left + slot * i + slot / 2;
    const bad = g.bad === true;
    if (v === null) {
      parts.push(
        `<rect class="bar" x="${(cx - bw / 2).toFixed(1)}" y="${h - bottom - 1}" width="${bw.toFixed(1)}" height="1" fill="#d1d5db"><title>${esc(`${g.id}: not recorded`)}</title></rect>`,
      );
    } else {
      const bh = max > 0 ? ((h - bottom - top) * v) / max : 0;
      parts.push(
        `<rect class="bar" x="${(cx - bw / 2).toFixed(1)}" y="${(h - bottom - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(bh, 0.5).toFixed(1)}" fill="${bad ? RED : colour}"><title>${esc(`${g.id}: ${format(v)}${bad ? ' (DAMAGED)' : ''}`)}</title></rect>`,
      );
    }
  });
  // the first and the last generation's label, told apart even when close in time
  const ends = gens.length > 1 ? [0, gens.length - 1] : gens.length === 1 ? [0] : [];
  for (const i of ends)
    parts.push(
      `<text class="lbl" x="${i === 0 ? left : w - left}" y="${h - 2}" font-size="9" text-anchor="${i === 0 ? 'start' : 'end'}" fill="#6b7280">${esc(labels[i] ?? '')}</text>`,
    );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}">${parts.join('')}</svg>`;
}

/**
 * One small card per stream in a grid: new bytes per generation, and the app downtime for the data
 * stream only (a logs generation comes from the same backup: its downtime is the data stream's).
 */
function charts(r: StatusReport): string {
  const cards = r.streams.map((s) => {
    const gens = generationsOf(s);
    const flags = streamFlags(s);
    const head = `<h3${flags.length ? ' class="stale"' : ''}>${esc(`${s.source}/${s.stream}`)}${flags.length ? ` <span class="flags">⚠ ${esc(flags.join(', '))}</span>` : ''}</h3>`;
    const cls = flags.length ? 'card failed' : 'card';
    if (gens.length === 0) return `<div class="${cls}">${head}<p>No generations.</p></div>`;
    return (
      `<div class="${cls}">${head}` +
      (s.stream === 'logs'
        ? ''
        : barChart(
            'app downtime per generation',
            gens,
            (g) => g.downtimeMs,
            (v) => formatDowntime(v),
            '#f59e0b',
          )) +
      barChart(
        'new bytes per generation',
        gens,
        (g) => g.bytesNew,
        (v) => formatBytes(v),
        '#2563eb',
      ) +
      `</div>`
    );
  });
  return `<div class="grid">${cards.join('')}</div>`;
}

/**
 * The state column: red with the row when bad (the row's class); a source outside its pull window
 * is `waiting`, in amber (the text report's yellow), with why (the window) under it.
 */
function stateCell(s: StatusReport['streams'][number], extra: string): string {
  const st = streamState(s);
  if (st.text !== 'waiting' || s.waiting === undefined) return `<td>${esc(st.text)}${esc(extra)}</td>`;
  const why = s.waiting.replace(/: waiting, not pulled this run$/, '');
  return `<td class="waiting" title="${esc(s.waiting)}">waiting${esc(extra)}<div class="why">${esc(why)}</div></td>`;
}

function storesTable(r: StatusReport): string {
  const rows = r.streams.flatMap((s) =>
    s.stores.map((st) => {
      const last = st.generations.at(-1);
      const first = st.generations[0];
      const cls = streamState(s).bad ? ' class="stale"' : '';
      return `<tr${cls}><td>${esc(`${s.source}/${s.stream}`)}</td><td>${esc(st.kind)}</td><td class="n">${st.generations.length}</td><td>${esc(first?.id ?? '-')}</td><td>${esc(last?.id ?? '-')}</td><td class="n">${last ? esc(formatAge(last.ageSeconds * 1000)) : '-'}</td><td class="n">${last ? esc(formatBytes(last.bytes)) : '-'}</td>${stateCell(s, st.kind === 'sink store' && s.quarantined.length ? `, ${s.quarantined.length} quarantined` : '')}<td class="dir"><code>${esc(st.dir)}</code></td></tr>`;
    }),
  );
  return `<div class="card"><table><tr><th>stream</th><th>store</th><th>generations</th><th>oldest</th><th>newest</th><th>age</th><th>size</th><th>state</th><th>directory</th></tr>${rows.join('')}</table></div>`;
}

function runRow(run: RunReport): string {
  return `<tr${run.ok ? '' : ' class="stale"'}><td>${esc(run.job)}</td><td>${esc(run.stream === null ? run.source : `${run.source}/${run.stream}`)}</td><td>${run.ok ? 'ok' : 'FAILED'}</td><td>${esc(run.finishedAt)}</td><td class="n">${esc(formatRunDuration(run.durationSeconds))}</td><td class="err">${esc(singleLine(run.error ?? ''))}</td></tr>`;
}

/** The last run per job; the error column wraps, so a long error stays on the page at any width. */
function runsTable(r: StatusReport): string {
  if (r.lastRuns.length === 0) return '<div class="card">No run recorded yet.</div>';
  return `<div class="card"><table class="runs"><tr><th>job</th><th>for</th><th>result</th><th>finished</th><th>duration</th><th>error</th></tr>${r.lastRuns.map(runRow).join('')}</table></div>`;
}

/** Per job and stream a strip of its last runs (oldest left): green ok, red failed, a title on each. */
function historyTable(r: StatusReport): string {
  const groups = new Map<string, RunReport[]>();
  for (const run of r.runHistory) {
    const key = `${run.job}\u0000${run.source}\u0000${run.stream ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), run]);
  }
  if (groups.size === 0) return '<div class="card">No run history yet.</div>';
  const rows = [...groups.values()].map((runs) => {
    const first = runs[0];
    if (!first) return '';
    const cells = runs
      .map(
        (run, i) =>
          `<rect class="run ${run.ok ? 'ok' : 'failed'}" x="${i * 12}" y="1" width="10" height="14" rx="2" fill="${run.ok ? GREEN : RED}"><title>${esc(`${run.finishedAt}: ${run.ok ? 'ok' : `FAILED: ${singleLine(run.error ?? '')}`} (${formatRunDuration(run.durationSeconds)})`)}</title></rect>`,
      )
      .join('');
    const failed = runs.filter((run) => !run.ok).length;
    return `<tr><td>${esc(first.job)}</td><td>${esc(first.stream === null ? first.source : `${first.source}/${first.stream}`)}</td><td><svg xmlns="http://www.w3.org/2000/svg" width="${runs.length * 12}" height="16" role="img" aria-label="run history">${cells}</svg></td><td class="n">${runs.length} run(s)${failed ? `, <span class="stale">${failed} failed</span>` : ''}</td></tr>`;
  });
  return `<div class="card"><table class="hist"><tr><th>job</th><th>for</th><th>last runs, oldest first</th><th></th></tr>${rows.join('')}</table></div>`;
}

/** The offsite tier per stream, as the last push recorded it (no network at status time). */
function offsiteTable(r: StatusReport): string {
  const rows = r.streams.flatMap((s) => {
    const o = s.offsite;
    if (o === null) return [];
    const bad = o.stale || o.lastError !== null;
    return [
      `<tr${bad ? ' class="stale"' : ''}><td>${esc(`${s.source}/${s.stream}`)}</td><td>${esc(o.newest?.id ?? '-')}</td><td class="n">${o.newest ? esc(formatAge(o.newest.ageSeconds * 1000)) : '-'}</td><td class="n">${o.lagSeconds === null ? '-' : esc(formatAge(o.lagSeconds * 1000))}${o.stale ? ' (STALE)' : ''}</td><td>${esc(o.checkedAt ?? 'never')}</td><td class="err">${o.lastError === null ? (o.checkedAt === null ? '-' : 'ok') : esc(`FAILED ${o.lastErrorAt ?? ''}: ${singleLine(o.lastError)}`)}</td></tr>`,
    ];
  });
  if (rows.length === 0) return '';
  return `<h2>Offsite copy</h2><div class="card"><table class="runs"><tr><th>stream</th><th>newest offsite</th><th>age</th><th>behind the sink store</th><th>last checked</th><th>last push</th></tr>${rows.join('')}</table></div>`;
}

function pointsTable(r: StatusReport): string {
  if (r.recoveryPoints.length === 0) return '<div class="card">No recovery point yet.</div>';
  const rows = r.recoveryPoints.map(
    (p) =>
      `<tr><td>${esc(p.kind)}</td><td>${esc(p.name)}</td><td>${p.oldest === null ? '-' : esc(formatInstant(p.oldest))}</td><td>${p.kind === 'tier' ? 'now' : esc(formatInstant(p.newest))}</td><td class="n">${p.count ?? '-'}</td><td>${esc(p.scope)}${p.kind === 'tier' ? ` (${p.keepDays ?? '?'} days; not managed by baton)` : ''}</td></tr>`,
  );
  return `<div class="card"><table><tr><th>where</th><th>what</th><th>from</th><th>to</th><th>count</th><th>scope</th></tr>${rows.join('')}</table></div>`;
}

/** The whole page. Everything from the report is escaped; the page loads nothing. */
export function renderStatusHtml(r: StatusReport): string {
  const who = r.host === 'source' ? `source ${r.name ?? ''}` : 'sink';
  const problems = r.problems.length
    ? `<div class="problems"><strong>${r.problems.length} problem(s)</strong><ul>${r.problems.map((p) => `<li>${esc(p.message)}</li>`).join('')}</ul></div>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(`baton status: ${who}`)}</title><style>${CSS}</style></head>
<body>
<h1>baton status: ${esc(who)} ${r.ok ? '<span class="ok">all ok</span>' : `<span class="bad">${r.problems.length} problem(s)</span>`}</h1>
<div class="sub">at ${esc(r.now)}${r.checks.staleAfterSeconds !== null ? ` · staleAfter ${esc(formatDuration(r.checks.staleAfterSeconds * 1000))}` : ''}${r.checks.transportOverdueSeconds !== null ? ` · transportOverdue ${esc(formatDuration(r.checks.transportOverdueSeconds * 1000))}` : ''}</div>
${problems}
<h2>Generations over time</h2>
${timeline(r)}
<h2>Downtime and new bytes per generation</h2>
${charts(r)}
${offsiteTable(r)}
<h2>Stores</h2>
${storesTable(r)}
<h2>Last runs</h2>
${runsTable(r)}
<h2>Run history</h2>
${historyTable(r)}
<h2>Recovery points</h2>
${pointsTable(r)}
</body></html>
`;
}
