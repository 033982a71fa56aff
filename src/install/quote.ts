/**
 * Quoting for the three places `baton install` writes command lines: a shell (authorized_keys
 * `command=`, cron), systemd's `ExecStart=`, and the authorized_keys option string. Pure.
 */

const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** One argument for /bin/sh: as is when plain, else in single quotes. */
export function shellQuote(arg: string): string {
  if (arg !== '' && PLAIN.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/**
 * One argument of a systemd command line: `%` specifiers and `$` variables are doubled so they stay
 * literal; anything beyond plain characters goes in double quotes with `\` and `"` escaped.
 */
export function systemdQuote(arg: string): string {
  const literal = arg.replace(/[%$]/g, (c) => c + c);
  if (literal !== '' && PLAIN.test(literal)) return literal;
  return `"${literal.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function systemdJoin(argv: readonly string[]): string {
  return argv.map(systemdQuote).join(' ');
}

/** A cron command field: a shell line in which `%` (cron's newline) is escaped. */
export function cronCommand(argv: readonly string[]): string {
  return shellJoin(argv).replaceAll('%', '\\%');
}

/** The value of an authorized_keys option such as `command="…"`: sshd unescapes only `\"`. */
export function authorizedKeysOptionValue(value: string): string {
  return `"${value.replaceAll('"', '\\"')}"`;
}

/** Control characters would end a line of a unit, a cron file or authorized_keys early. */
export function hasControlCharacters(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]/.test(s);
}
