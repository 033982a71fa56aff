import type { RunResult } from './run.js';

/** rsync exit codes worth naming in messages (rsync(1) EXIT VALUES). */
const RSYNC_EXIT: Record<number, string> = {
  1: 'syntax or usage error',
  2: 'protocol incompatibility',
  3: 'errors selecting input/output files, dirs',
  5: 'error starting client-server protocol',
  10: 'error in socket I/O',
  11: 'error in file I/O (disk full?)',
  12: 'error in rsync protocol data stream',
  13: 'errors with program diagnostics',
  14: 'error in IPC code',
  20: 'received SIGUSR1 or SIGINT',
  23: 'partial transfer due to error',
  24: 'partial transfer due to vanished source files',
  25: 'the --max-delete limit stopped deletions',
  30: 'timeout in data send/receive',
  35: 'timeout waiting for daemon connection',
  127: 'rsync not found',
  255: 'ssh connection failed',
};

/**
 * Every non-zero rsync exit is a failure for a generation, 23 and 24 (partial transfer,
 * vanished files) included: a generation is complete or it does not exist.
 */
export function describeRsyncResult(r: RunResult): string | undefined {
  if (r.code === 0 && !r.timedOut && r.signal === null) return undefined;
  if (r.timedOut) return `rsync timed out after ${Math.round(r.durationMs / 1000)}s`;
  if (r.signal) return `rsync killed by ${r.signal}`;
  const what = RSYNC_EXIT[r.code ?? -1] ?? 'failed';
  const errLines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('rsync error:'));
  const detail = errLines.at(-1);
  return `rsync exit ${r.code} (${what})${detail ? `: ${detail.slice(0, 300)}` : ''}`;
}

/** Environment for rsync: C locale so messages and progress parse the same everywhere. */
export function rsyncEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C', ...extra };
}
