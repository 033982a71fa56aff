import type { Logger } from '../adapters/log.js';

/** What every command receives: parsed global options and the adapters it may use. */
export interface CliContext {
  log: Logger;
  /** true when stderr is a TTY (progress bars, colour). */
  interactive: boolean;
  now: () => Date;
  /** `--log-format`: json prints a failure as a log record, text as one `baton:` line */
  logFormat?: 'text' | 'json';
  /** stderr is the journal's (JOURNAL_STREAM): `<N>` priority prefixes, no own timestamps */
  journal?: boolean;
}
