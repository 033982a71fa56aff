import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from '@commander-js/extra-typings';
import { createLogger, errorLine, stderrIsJournal } from '../adapters/log.js';
import { BatonError, ConfigError, ExitCode, oneLine } from '../errors.js';
import { batonVersion } from '../version.js';
import { NODE_FLAGS } from './node-flags.js';
import type { CliContext } from './context.js';

export type Root = ReturnType<typeof createRoot>;

export function createRoot() {
  return new Command('baton')
    .description(
      'App-consistent backups moved from a source server to a sink server over ssh + rsync,\n' +
        'with generations kept on both sides. See `baton <command> --help`.',
    )
    .version(batonVersion, '-V, --version')
    .addOption(
      new Option('--log-format <format>', 'log lines as text or json')
        .choices(['text', 'json'] as const)
        .default('text'),
    )
    .addOption(
      new Option('--log-level <level>', 'least level logged')
        .choices(['debug', 'info', 'warn', 'error'] as const)
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Examples:
  baton install source --print          # what setting up this host would do
  baton source backup --dry-run         # the nightly job's plan, nothing changed
  baton sink pull data                  # pull, verify, publish, prune, ack
  baton status                          # generations, last runs, recovery points
  baton demo                            # a full cycle on this machine`,
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
}

/** The `CliContext` for the root's parsed global options. */
export function contextOf(root: Root): CliContext {
  const o = root.opts();
  const journal = stderrIsJournal(process.env.JOURNAL_STREAM);
  return {
    log: createLogger({ format: o.logFormat === 'json' ? 'json' : 'text', level: o.logLevel, journal }),
    journal,
    logFormat: o.logFormat === 'json' ? 'json' : 'text',
    // a progress bar redraws its line: not on a dumb terminal
    interactive: process.stderr.isTTY && process.env.TERM !== 'dumb',
    now: clockFrom(process.env.BATON_NOW),
  };
}

/**
 * The clock. `BATON_NOW` (an ISO time, for tests and drills) starts it at that instant; it then runs
 * on in real time, so durations stay real. Read here only.
 */
function clockFrom(batonNow: string | undefined): () => Date {
  if (batonNow === undefined || batonNow === '') return () => new Date();
  const start = Date.parse(batonNow);
  if (Number.isNaN(start) || !/^\d{4}-\d{2}-\d{2}T/.test(batonNow))
    throw new ConfigError(
      `BATON_NOW=${JSON.stringify(batonNow)} is not an ISO time like 2026-11-28T06:19:22Z`,
    );
  const offset = start - Date.now();
  return () => new Date(Date.now() + offset);
}

/**
 * Wraps a command body: runs it, maps what it throws to one line on stderr and an exit code.
 * The exit code lands in process.exitCode; src/cli/main.ts is the only place that exits.
 */
export async function runAction(root: Root, body: (ctx: CliContext) => Promise<unknown>): Promise<void> {
  const ctx = contextOf(root);
  try {
    const code = await body(ctx);
    process.exitCode = typeof code === 'number' ? code : ExitCode.ok;
  } catch (err) {
    process.exitCode = reportError(ctx, err);
  }
}

export function reportError(ctx: CliContext | undefined, err: unknown): number {
  if (err instanceof BatonError) {
    // Printed once: the `baton:` line in text (the log line said the same), the log record in json.
    if (ctx?.logFormat === 'json') ctx.log.error({ step: err.step, exitCode: err.exitCode }, oneLine(err));
    else process.stderr.write(errorLine(oneLine(err), ctx?.journal ?? false));
    return err.exitCode;
  }
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : ExitCode.usage;
  // Not one of ours: a bug. Say so, with the stack.
  ctx?.log.fatal({ err }, 'unexpected error');
  process.stderr.write(
    `baton: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return ExitCode.failed;
}

export const DEFAULT_CONFIG = { source: '/etc/baton/source.yaml', sink: '/etc/baton/sink.yaml' } as const;

/**
 * argv that starts this baton again the way an installed one starts: node, its flags, the entry
 * script (dist/cli/main.js, bundled or not).
 */
export function cliArgv(): string[] {
  // Bundled (scripts/bundle.mjs), this code may sit in dist/cli/chunks/, one level below main.js.
  const here = new URL('.', import.meta.url);
  const main = new URL(here.pathname.endsWith('/chunks/') ? '../main.js' : './main.js', here);
  return [process.execPath, ...NODE_FLAGS, fileURLToPath(main)];
}
