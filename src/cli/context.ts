import type { Logger } from '../adapters/log.js';

/** What every command receives: parsed global options and the adapters it may use. */
export interface CliContext {
  log: Logger;
  /** true when stderr is a TTY (progress bars, colour). */
  interactive: boolean;
  now: () => Date;
}
