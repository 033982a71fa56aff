/**
 * The few error classes baton throws on purpose. Each carries its exit code; `src/cli` maps them
 * once. Anything else that escapes is a bug and is printed with its stack.
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, locked: 75 } as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class BatonError extends Error {
  readonly exitCode: ExitCodeValue;
  /** The process step that failed (`stop-app`, `collect`, `pull`, …), shown in the one-line message. */
  readonly step: string | undefined;
  constructor(message: string, opts: { exitCode?: ExitCodeValue; step?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.exitCode = opts.exitCode ?? ExitCode.failed;
    this.step = opts.step;
  }
}

/** Bad config file, bad arguments: rejected before anything is touched (exit 2). */
export class ConfigError extends BatonError {
  constructor(message: string, opts: { step?: string; cause?: unknown } = {}) {
    super(message, { ...opts, exitCode: ExitCode.usage });
  }
}

/** Another run holds the lock (exit 75, EX_TEMPFAIL: cron may simply try later). */
export class LockedError extends BatonError {
  constructor(message: string) {
    super(message, { exitCode: ExitCode.locked, step: 'lock' });
  }
}

/** The job ran and failed (exit 1). */
export class JobError extends BatonError {
  constructor(message: string, opts: { step?: string; cause?: unknown } = {}) {
    super(message, { ...opts, exitCode: ExitCode.failed });
  }
}

/** Several failures that must all be reported (e.g. the backup failed and the app did not come back). */
export class CombinedError extends JobError {
  readonly errors: readonly Error[];
  constructor(errors: readonly Error[]) {
    super(errors.map((e) => oneLine(e)).join('; and '), {
      step: errors.map((e) => (e instanceof BatonError ? e.step : undefined)).find((s) => s !== undefined),
    });
    this.errors = errors;
  }
}

/** `step: message` for a BatonError, the plain message otherwise. */
export function oneLine(err: unknown): string {
  if (err instanceof BatonError && err.step !== undefined && !(err instanceof CombinedError)) {
    return `${err.step}: ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A multi-line text (an error that lists its details one a line) as one whole line: lines trimmed,
 * empty ones dropped, joined by `; ` (or a space after a line that ends in `:`). Nothing is cut off.
 */
export function singleLine(text: string): string {
  let out = '';
  for (const raw of text.split(/\r?\n|\r/)) {
    const line = raw.trim();
    if (line === '') continue;
    out = out === '' ? line : `${out}${out.endsWith(':') ? ' ' : '; '}${line}`;
  }
  return out;
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}
