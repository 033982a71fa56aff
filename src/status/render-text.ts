import { singleLine } from '../errors.js';
import pc from 'picocolors';
import { formatAge } from '../core/duration.js';
import type { StatusReport, StreamReport } from './report.js';
import { formatBytes, formatDowntime, formatInstant, formatRunDuration, streamState } from './format.js';

type Paint = (s: string) => string;
interface Cell {
  text: string;
  paint?: Paint;
}
type Align = 'l' | 'r';

const cell = (text: string, paint?: Paint): Cell => (paint ? { text, paint } : { text });

/** Aligned columns: widths from the plain text, colour applied after padding (escape codes take no room). */
function table(headers: readonly string[], rows: readonly Cell[][], align: readonly Align[], c: Colors) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.text.length ?? 0)));
  const line = (cells: readonly Cell[]) =>
    cells
      .map((x, i) => {
        const w = widths[i] ?? 0;
        const padded = align[i] === 'r' ? x.text.padStart(w) : x.text.padEnd(w);
        return x.paint ? x.paint(padded) : padded;
      })
      .join('  ')
      .trimEnd();
  return [`  ${line(headers.map((h) => cell(h, c.dim)))}`, ...rows.map((r) => `  ${line(r)}`)];
}

type Colors = ReturnType<typeof pc.createColors>;

const age = (s: number) => formatAge(s * 1000);

function stateCell(s: StreamReport, c: Colors): Cell {
  const st = streamState(s);
  return cell(st.text, st.bad ? c.red : st.text === 'empty' || st.text === 'waiting' ? c.yellow : c.green);
}

/**
 * The readable report: the problems first (at fleet size the tables run to hundreds of lines), then a
 * summary table, the offsite tier, each store's generations, last runs and recovery points.
 */
export function renderStatus(r: StatusReport, opts: { color?: boolean } = {}): string {
  const c = pc.createColors(opts.color ?? false);
  const out: string[] = [];
  const who = r.host === 'source' ? `source ${r.name ?? ''}` : 'sink';
  out.push(
    `${c.bold(`baton status: ${who}`)}  at ${r.now}  ${
      r.ok ? c.green('all ok') : c.red(`${r.problems.length} problem(s)`)
    }`,
  );

  if (r.problems.length) {
    out.push('', c.bold(c.red('PROBLEMS')));
    for (const p of r.problems) out.push(`  ${c.red('✗')} ${singleLine(p.message)}`);
  }

  out.push('', c.bold('STREAMS'));
  out.push(
    ...table(
      ['STREAM', 'STORES', 'NEWEST', 'AGE', 'PENDING', 'QUARANTINED', 'STATE'],
      r.streams.map((s) => [
        cell(`${s.source}/${s.stream}`),
        cell(s.stores.map((st) => `${st.kind}: ${st.generations.length}`).join(', ')),
        cell(s.newest?.id ?? '-'),
        cell(s.newest ? age(s.newest.ageSeconds) : '-'),
        cell(r.host === 'source' ? String(s.pending.length) : '-'),
        cell(
          r.host === 'sink' ? String(s.quarantined.length) : '-',
          s.quarantined.length ? c.yellow : undefined,
        ),
        stateCell(s, c),
      ]),
      ['l', 'l', 'l', 'r', 'r', 'r', 'l'],
      c,
    ),
  );

  const offsite = r.streams.filter((s) => s.offsite !== null);
  if (offsite.length > 0) {
    out.push('', c.bold('OFFSITE'));
    out.push(
      ...table(
        ['STREAM', 'NEWEST OFFSITE', 'AGE', 'BEHIND SINK', 'LAST CHECKED', 'LAST PUSH'],
        offsite.map((s) => {
          const o = s.offsite;
          return [
            cell(`${s.source}/${s.stream}`),
            cell(o?.newest?.id ?? '-'),
            cell(o?.newest ? age(o.newest.ageSeconds) : '-'),
            cell(o?.lagSeconds == null ? '-' : age(o.lagSeconds), o?.stale ? c.red : undefined),
            cell(o?.checkedAt ?? 'never'),
            o?.lastError == null
              ? cell(o?.checkedAt == null ? '-' : 'ok', c.green)
              : cell(`FAILED ${o.lastErrorAt ?? ''}: ${singleLine(o.lastError)}`, c.red),
          ];
        }),
        ['l', 'l', 'r', 'r', 'l', 'l'],
        c,
      ),
    );
  }

  for (const s of r.streams) {
    for (const st of s.stores) {
      out.push('', `${c.bold(`${s.source}/${s.stream}`)}  ${st.kind}  ${c.dim(st.dir)}`);
      if (st.generations.length === 0) {
        out.push(`  ${c.dim('(no generations)')}`);
        continue;
      }
      const overdue = new Set(s.pending.filter((p) => p.overdue).map((p) => p.id));
      out.push(
        ...table(
          ['GENERATION', 'AGE', 'FILES', 'BYTES', 'NEW', 'VERIFIED', 'DOWNTIME'],
          [...st.generations]
            .reverse()
            .map((g) => [
              cell(g.id, overdue.has(g.id) ? c.red : undefined),
              cell(age(g.ageSeconds)),
              cell(g.files === null ? '?' : String(g.files)),
              cell(formatBytes(g.bytes)),
              cell(formatBytes(g.bytesNew)),
              cell(
                g.bad === true
                  ? 'BAD'
                  : g.verified
                    ? 'yes'
                    : overdue.has(g.id)
                      ? 'no, OVERDUE'
                      : 'no, pending',
                overdue.has(g.id) || g.bad === true ? c.red : undefined,
              ),
              cell(formatDowntime(g.downtimeMs)),
            ]),
          ['l', 'r', 'r', 'r', 'r', 'l', 'r'],
          c,
        ),
      );
    }
    for (const q of s.quarantined) {
      out.push(
        `  ${c.yellow('quarantined')} ${q.name}${q.quarantinedAt ? `  (since ${q.quarantinedAt})` : ''}`,
      );
    }
  }

  out.push('', c.bold('LAST RUNS'));
  if (r.lastRuns.length === 0) out.push(`  ${c.dim('(no run recorded yet)')}`);
  else
    out.push(
      ...table(
        ['JOB', 'FOR', 'RESULT', 'FINISHED', 'DURATION', 'ERROR'],
        r.lastRuns.map((run) => [
          cell(run.job),
          cell(run.stream === null ? run.source : `${run.source}/${run.stream}`),
          run.ok ? cell('ok', c.green) : cell('FAILED', c.red),
          cell(run.finishedAt),
          cell(formatRunDuration(run.durationSeconds)),
          cell(run.error === null ? '' : singleLine(run.error), c.red),
        ]),
        ['l', 'l', 'l', 'l', 'r', 'l'],
        c,
      ),
    );

  out.push('', c.bold('RECOVERY POINTS'));
  if (r.recoveryPoints.length === 0) out.push(`  ${c.dim('(none: no complete generation yet)')}`);
  else
    out.push(
      ...table(
        ['WHERE', 'WHAT', 'FROM', 'TO', 'COUNT', 'SCOPE'],
        r.recoveryPoints.map((p) => [
          cell(p.kind),
          cell(p.name),
          cell(formatInstant(p.oldest)),
          cell(p.kind === 'tier' ? 'now' : formatInstant(p.newest)),
          cell(p.count === null ? '-' : String(p.count)),
          cell(
            p.kind === 'tier' ? `${p.scope} (${p.keepDays ?? '?'} days; not managed by baton)` : p.scope,
            p.kind === 'tier' ? c.dim : undefined,
          ),
        ]),
        ['l', 'l', 'l', 'l', 'r', 'l'],
        c,
      ),
    );

  return `${out.join('\n')}\n`;
}
