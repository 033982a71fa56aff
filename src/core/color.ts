/**
 * Whether to colour output for a stream: `NO_COLOR` (any non-empty value) turns colour off,
 * `FORCE_COLOR` (non-empty, not "0"/"false") turns it on even off a TTY, `TERM=dumb` turns it off;
 * otherwise colour follows whether the stream is a TTY. https://no-color.org
 */
export function colorEnabled(
  env: { NO_COLOR?: string | undefined; FORCE_COLOR?: string | undefined; TERM?: string | undefined },
  isTTY: boolean,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '')
    return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  if (env.TERM === 'dumb') return false;
  return isTTY;
}
