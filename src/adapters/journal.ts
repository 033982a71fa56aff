/** The last lines a systemd unit logged, for a failure alert: `journalctl`, bounded in time and size. */
import { runProcess } from './run.js';

/** Lines asked for, and the most of them kept (the tail) should they be long. */
export const JOURNAL_LINES = 50;
export const JOURNAL_MAX_BYTES = 16 * 1024;

/** A systemd unit name as `%n` gives it: name chars, one type suffix; nothing a shell or journalctl would read as an option. */
export function isUnitName(s: string): boolean {
  return s.length <= 256 && /^[A-Za-z0-9:_.@\\-]+\.[a-z]+$/.test(s) && !s.startsWith('-');
}

/**
 * The unit's last `JOURNAL_LINES` journal lines, or a sentence saying why there are none
 * (no journalctl on this host, it failed or timed out). Never throws.
 */
export async function lastJournalLines(unit: string): Promise<string> {
  const r = await runProcess(['journalctl', '-u', unit, '-n', String(JOURNAL_LINES), '--no-pager'], {
    timeoutMs: 15_000,
    tailBytes: JOURNAL_MAX_BYTES,
    env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' },
  });
  if (r.code === 127) return `(no journal lines: journalctl is not installed on this host)`;
  if (r.code !== 0 || r.timedOut) {
    const why = r.timedOut ? 'timed out' : `exit ${String(r.code ?? r.signal)}`;
    return `(no journal lines: journalctl -u ${unit} ${why}: ${r.stderr.trim().slice(-500)})`;
  }
  const text = r.stdout.trimEnd();
  return text === '' ? '(the journal has no lines for this unit)' : text;
}
