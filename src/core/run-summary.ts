/**
 * The short summary a successful run sends with its healthchecks ping (shown beside the check):
 * what was pulled or backed up, how big, what was pruned, how long the app was down. Bounded:
 * healthchecks keeps up to 100 kB of a body; this stays under SUMMARY_MAX_BYTES.
 */

export const SUMMARY_MAX_BYTES = 1000;

/** 1536 → `1.5 KiB`; null → `?`. */
export function formatBytes(b: number | null): string {
  if (b === null) return '?';
  if (b < 1024) return `${b} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i] ?? 'PiB'}`;
}

/** `1234` → `1,234 files`, `1` → `1 file`. */
function files(n: number): string {
  return `${n.toLocaleString('en-US')} file${n === 1 ? '' : 's'}`;
}

/** What one source and stream did in a pull, as much as the summary needs. */
export interface PullSummaryInput {
  source: string;
  stream: string;
  pulled: readonly string[];
  pruned: readonly string[];
  warnings: readonly string[];
  pulledFiles?: number | undefined;
  pulledBytes?: number | undefined;
  waiting?: string | undefined;
  locked?: boolean | undefined;
}

/** One line per source and stream: `shop/data: pulled 2026-…Z (1,234 files, 5.6 MiB), pruned 1`. */
export function pullSummary(outcomes: readonly PullSummaryInput[]): string {
  return bounded(
    outcomes.map((o) => {
      const what: string[] = [];
      if (o.pulled.length > 0) {
        const size =
          o.pulledFiles !== undefined && o.pulledBytes !== undefined
            ? ` (${files(o.pulledFiles)}, ${formatBytes(o.pulledBytes)})`
            : '';
        const ids =
          o.pulled.length === 1
            ? (o.pulled[0] ?? '')
            : `${o.pulled.length} generations up to ${o.pulled.at(-1) ?? ''}`;
        what.push(`pulled ${ids}${size}`);
      } else if (o.locked) what.push('skipped (another run holds the lock)');
      else if (o.waiting !== undefined) what.push('waiting (outside its window)');
      else what.push('nothing new');
      if (o.pruned.length > 0) what.push(`pruned ${o.pruned.length}`);
      if (o.warnings.length > 0)
        what.push(`${o.warnings.length} warning${o.warnings.length === 1 ? '' : 's'}`);
      return `${o.source}/${o.stream}: ${what.join(', ')}`;
    }),
  );
}

/** `backup 2026-…Z, downtime 1.2 s; data 1,234 files, 5.6 MiB; logs 3 files, 120 B`. */
export function backupSummary(
  id: string,
  downtimeMs: number,
  generations: readonly { stream: string; files: number; bytes: number }[],
): string {
  const parts = generations.map((g) => `${g.stream} ${files(g.files)}, ${formatBytes(g.bytes)}`);
  return bounded([[`backup ${id}, downtime ${(downtimeMs / 1000).toFixed(1)} s`, ...parts].join('; ')]);
}

/** Whole lines while they fit in SUMMARY_MAX_BYTES, then `… N more`. */
function bounded(lines: readonly string[]): string {
  const out: string[] = [];
  let size = 0;
  for (const [i, raw] of lines.entries()) {
    const line = raw.length > 300 ? `${raw.slice(0, 299)}…` : raw;
    const more = `… ${lines.length - i} more`;
    if (size + Buffer.byteLength(line, 'utf8') + 1 + more.length + 1 > SUMMARY_MAX_BYTES) {
      out.push(more);
      break;
    }
    out.push(line);
    size += Buffer.byteLength(line, 'utf8') + 1;
  }
  return out.join('\n');
}
