/**
 * The systemd units / cron files `baton install` writes: pure text from the baton argv, the config
 * file and the schedule. Idempotency depends on these being byte-for-byte stable for the same input.
 */
import type { StreamName } from '../config/schema.js';
import { cronCommand, hasControlCharacters, systemdJoin } from './quote.js';

/** systemd OnCalendar= defaults: the source backs up at night, the sink pulls after it. */
export const DEFAULT_CALENDAR = {
  sourceBackup: '*-*-* 02:15:00',
  sinkPull: { data: '*-*-* 04:00:00', logs: '*-*-* 04:30:00' },
  /** the weekly `verify --all --deep`: Sunday morning, after the night's backup and pulls */
  verify: 'Sun *-*-* 06:00:00',
} as const satisfies { sourceBackup: string; sinkPull: Record<StreamName, string>; verify: string };

/** The weekly verify reads every byte once: spread it over an hour, nothing waits on it. */
const VERIFY_RANDOMIZED_DELAY = '1h';

/** A small spread so many hosts do not start at the same second; small, because the app goes down. */
const RANDOMIZED_DELAY = '5min';

const HEADER = (kind: 'source' | 'sink') =>
  `# Written by \`baton install ${kind}\`. Edits are replaced when it runs again: change its options instead.\n`;

export interface UnitFile {
  /** file name, e.g. `baton-source-backup.service` */
  name: string;
  content: string;
}

/** Hardening of the background units (sink pulls, verifies): they write their store and state only. */
const BACKGROUND_HARDENING = `ProtectSystem=full
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
`;

/** The failure handler template of one host kind: `baton-<kind>-failure@.service`. */
export const failureTemplate = (kind: 'source' | 'sink'): string => `baton-${kind}-failure@.service`;

/** `OnFailure=` of every baton service: its failure handler instance, named after the failed unit. */
const onFailure = (kind: 'source' | 'sink') => `OnFailure=${failureTemplate(kind).replace('@', '@%n')}\n`;

/**
 * `baton-<kind>-failure@.service`: started by systemd when a baton unit fails (`OnFailure=`), with
 * the failed unit's name as instance; alerts through the config's channels with the unit's last
 * journal lines. `baton notify-failure` exits 0 whatever happens, so the handler does not fail itself.
 */
export function failureUnit(kind: 'source' | 'sink', baton: readonly string[], configFile: string): UnitFile {
  // %i stays a specifier (systemdJoin would double the %): the instance, i.e. the failed unit's name.
  const argv = `${systemdJoin([...baton, 'notify-failure'])} %i ${systemdJoin(['--config', configFile])}`;
  return {
    name: failureTemplate(kind),
    content: `${HEADER(kind)}[Unit]
Description=baton: alert that %i failed (mail, webhook, command of the ${kind} config)

[Service]
Type=oneshot
ExecStart=${argv}
SyslogIdentifier=baton-${kind}
`,
  };
}

/** Shared by the weekly verify units of both kinds. */
export interface VerifySchedule {
  baton: readonly string[];
  configFile: string;
  /** OnCalendar= of the weekly verify (DEFAULT_CALENDAR.verify; `--verify-calendar`) */
  verifyCalendar: string;
}

/**
 * `baton-<kind>-verify.service` + `.timer`: a weekly `baton verify --all --deep` of the host's stores
 * (source: handovers + source store; sink: sink store), at the lowest CPU and I/O priority.
 */
export function verifyUnits(kind: 'source' | 'sink', o: VerifySchedule): UnitFile[] {
  const what = kind === 'source' ? 'the handovers and the source store' : 'the sink store';
  const service = `${HEADER(kind)}[Unit]
Description=baton: weekly deep verify of ${what} (every byte against its manifest)
${onFailure(kind)}
[Service]
Type=oneshot
ExecStart=${systemdJoin([...o.baton, 'verify', '--all', '--deep', '--config', o.configFile])}
SyslogIdentifier=baton-${kind}
# Reads every generation once a week; nothing waits on it: last in line for CPU and disk.
Nice=19
IOSchedulingClass=idle
${BACKGROUND_HARDENING}`;
  const timer = `${HEADER(kind)}[Unit]
Description=baton: weekly deep verify of ${what}

[Timer]
OnCalendar=${o.verifyCalendar}
Persistent=true
RandomizedDelaySec=${VERIFY_RANDOMIZED_DELAY}

[Install]
WantedBy=timers.target
`;
  return [
    { name: `baton-${kind}-verify.service`, content: service },
    { name: `baton-${kind}-verify.timer`, content: timer },
  ];
}

/** Why an OnCalendar= expression is not acceptable, or undefined when it is. */
export function checkCalendar(spec: string): string | undefined {
  if (spec.trim() === '') return 'empty calendar expression';
  if (hasControlCharacters(spec) || !/^[A-Za-z0-9*:,./~ +-]+$/.test(spec)) {
    // JSON-quoted: a newline in the option must not split the one error line
    return `${JSON.stringify(spec)} is not an OnCalendar= expression (e.g. "*-*-* 02:15:00", "daily", "Mon..Fri 02:15")`;
  }
  return undefined;
}

/**
 * The cron time fields for the calendar expressions that have one: `daily`, `hourly`, `weekly`,
 * `HH:MM`, `HH:MM:00`, `*-*-* HH:MM[:00]`. Anything else cannot be written as a cron line.
 */
export function cronScheduleOf(spec: string): { ok: true; fields: string } | { ok: false; error: string } {
  const s = spec.trim();
  const fixed: Record<string, string> = { daily: '0 0 * * *', hourly: '0 * * * *', weekly: '0 0 * * 1' };
  const known = fixed[s];
  if (known !== undefined) return { ok: true, fields: known };
  const m = /^(?:\*-\*-\*\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(s);
  const hour = Number(m?.[1]);
  const minute = Number(m?.[2]);
  if (!m || hour > 23 || minute > 59 || (m[3] !== undefined && Number(m[3]) !== 0)) {
    return {
      ok: false,
      error: `"${spec}" has no cron equivalent: with --cron give a daily time like 02:15 or "*-*-* 02:15:00"`,
    };
  }
  return { ok: true, fields: `${minute} ${hour} * * *` };
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

/**
 * The cron time fields of the weekly verify: `WEEKDAY HH:MM[:00]` or `WEEKDAY *-*-* HH:MM[:00]`
 * (one day, English three-letter name, as OnCalendar= writes it), or anything cronScheduleOf takes.
 */
export function cronWeeklyScheduleOf(
  spec: string,
): { ok: true; fields: string } | { ok: false; error: string } {
  const m = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(.+)$/.exec(spec.trim());
  if (!m) return cronScheduleOf(spec);
  const time = cronScheduleOf(m[2] ?? '');
  if (!time.ok || !/^\d+ \d+ \* \* \*$/.test(time.fields)) {
    return {
      ok: false,
      error: `"${spec}" has no cron equivalent: with --cron give a day and a time like "Sun 06:00"`,
    };
  }
  return {
    ok: true,
    fields: time.fields.replace(/\*$/, String(WEEKDAYS.indexOf(m[1] as (typeof WEEKDAYS)[number]))),
  };
}

export interface SourceSchedule extends VerifySchedule {
  onCalendar: string;
  /** app.startTimeout in ms: a stopped unit must leave baton time to start the app again. */
  appStartTimeoutMs: number;
}

/** `baton-source-backup.service` + `.timer`, and `baton-source-recover.service` for boot. */
export function sourceUnits(o: SourceSchedule): UnitFile[] {
  const run = (...args: string[]) => systemdJoin([...o.baton, ...args, '--config', o.configFile]);
  const stopSeconds = Math.ceil(o.appStartTimeoutMs / 1000) + 60;
  const backup = `${HEADER('source')}[Unit]
Description=baton: app-consistent backup of this source (stop app, collect, start app, hand over)
${onFailure('source')}Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=${run('source', 'backup')}
# Also after a killed or failed run: starts the app if that run left it stopped, removes work dirs.
ExecStopPost=${run('source', 'recover')}
# The app's stop/start commands run inside this unit. An app started by a shell line (rather than
# systemctl) would otherwise be killed together with this unit once the backup is done.
KillMode=process
# On SIGTERM baton still starts the app again (up to app.startTimeout): wait that long before SIGKILL.
TimeoutStopSec=${stopSeconds}s
SyslogIdentifier=baton-source
# Hardening that the app's own stop/start commands (run as root, inheriting all of this) survive:
# no PrivateTmp, ProtectSystem or NoNewPrivileges (setuid helpers such as postdrop must keep working).
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
LockPersonality=yes
`;
  const timer = `${HEADER('source')}[Unit]
Description=baton: nightly backup of this source

[Timer]
OnCalendar=${o.onCalendar}
Persistent=true
RandomizedDelaySec=${RANDOMIZED_DELAY}

[Install]
WantedBy=timers.target
`;
  const recover = `${HEADER('source')}[Unit]
Description=baton: at boot, start the app again if a backup interrupted by a crash left it stopped
After=local-fs.target network-online.target
Wants=network-online.target
Before=baton-source-backup.service
${onFailure('source')}
[Service]
Type=oneshot
ExecStart=${run('source', 'recover')}
SyslogIdentifier=baton-source

[Install]
WantedBy=multi-user.target
`;
  return [
    { name: 'baton-source-backup.service', content: backup },
    { name: 'baton-source-backup.timer', content: timer },
    { name: 'baton-source-recover.service', content: recover },
    ...verifyUnits('source', o),
    failureUnit('source', o.baton, o.configFile),
  ];
}

export interface SinkSchedule extends VerifySchedule {
  /** the streams some source has, with their OnCalendar= */
  streams: ReadonlyArray<{ stream: StreamName; onCalendar: string }>;
}

/** `baton-sink-pull-<stream>.service` + `.timer` per stream. */
export function sinkUnits(o: SinkSchedule): UnitFile[] {
  const pulls = o.streams.flatMap(({ stream, onCalendar }) => {
    const service = `${HEADER('sink')}[Unit]
Description=baton: pull, verify, publish and ack the ${stream} generations of every source
${onFailure('sink')}Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=${systemdJoin([...o.baton, 'sink', 'pull', stream, '--config', o.configFile])}
SyslogIdentifier=baton-sink
# A pull is background work on the backup server (nothing waits on it, no app is down meanwhile):
# lowest CPU and I/O priority, so restores, status and the host's other work go first.
# (Not on the source backup: the app is down while it collects, and its start command inherits this.)
Nice=10
IOSchedulingClass=idle
# The sink runs only ssh, rsync and mail: it needs to write its store and state, nothing in /usr or /etc.
# (No NoNewPrivileges: alerts.mail.sendmail may hand over to a setgid postdrop.)
${BACKGROUND_HARDENING}`;
    const timer = `${HEADER('sink')}[Unit]
Description=baton: pull the ${stream} stream from every source

[Timer]
OnCalendar=${onCalendar}
Persistent=true
RandomizedDelaySec=${RANDOMIZED_DELAY}

[Install]
WantedBy=timers.target
`;
    return [
      { name: `baton-sink-pull-${stream}.service`, content: service },
      { name: `baton-sink-pull-${stream}.timer`, content: timer },
    ];
  });
  return [...pulls, ...verifyUnits('sink', o), failureUnit('sink', o.baton, o.configFile)];
}

// cron's PATH is /usr/bin:/bin; baton runs rsync, ssh and the app's commands (systemctl, …).
const CRON_ENV = 'SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n';

/** /etc/cron.d/baton-source: the nightly backup and the boot-time recover. */
export function sourceCronFile(o: SourceSchedule & { cronFields: string; verifyCronFields: string }): string {
  const run = (...args: string[]) => cronCommand([...o.baton, ...args, '--config', o.configFile]);
  return `${HEADER('source')}${CRON_ENV}${o.cronFields} root ${run('source', 'backup')}
@reboot root ${run('source', 'recover')}
${verifyCronLine(o)}`;
}

/** /etc/cron.d/baton-sink: one pull line per stream. */
export function sinkCronFile(
  o: Omit<SinkSchedule, 'streams' | 'verifyCalendar'> & {
    streams: ReadonlyArray<{ stream: StreamName; cronFields: string }>;
    verifyCronFields: string;
  },
): string {
  const lines = o.streams.map(
    ({ stream, cronFields }) =>
      `${cronFields} root ${cronCommand([...o.baton, 'sink', 'pull', stream, '--config', o.configFile])}\n`,
  );
  return `${HEADER('sink')}${CRON_ENV}${lines.join('')}${verifyCronLine(o)}`;
}

/** The weekly `verify --all --deep` line of a cron file, at the lowest CPU and I/O priority. */
function verifyCronLine(o: Omit<VerifySchedule, 'verifyCalendar'> & { verifyCronFields: string }): string {
  const argv = ['nice', '-n', '19', 'ionice', '-c', '3', ...o.baton, 'verify', '--all', '--deep'];
  return `${o.verifyCronFields} root ${cronCommand([...argv, '--config', o.configFile])}\n`;
}
