/**
 * `baton install`: the pure planner. From the config, the options and a snapshot of the host
 * (users, paths: what observe.ts read), it decides every action: users to create, directories and
 * files with owner and mode, key pairs, and lines to print for the operator. Each action says whether
 * it creates, updates or leaves alone what is there, so a second run shows "nothing to do".
 * No `node:fs`, no processes: apply.ts acts, install.ts joins the two.
 */
import { dirname, join } from 'node:path/posix';
import type { SinkConfig, SourceConfig, StreamName } from '../config/schema.js';
import { STREAMS } from '../config/schema.js';
import { ConfigError, JobError } from '../errors.js';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../core/store-marker.js';
import { authorizedKeysOptionValue, hasControlCharacters, shellJoin } from './quote.js';
import {
  checkCalendar,
  cronScheduleOf,
  cronWeeklyScheduleOf,
  DEFAULT_CALENDAR,
  sinkCronFile,
  sinkUnits,
  sourceCronFile,
  sourceUnits,
} from './schedule.js';

export type Change = 'create' | 'update' | 'none';

/** What the host looks like (observe.ts). A path or user that is missing is absent from its map. */
export interface HostState {
  users: ReadonlyMap<string, ObservedUser>;
  paths: ReadonlyMap<string, ObservedPath>;
}

export interface ObservedUser {
  uid: number;
  gid: number;
  home: string;
  /** password field starts with `!` (sshd without PAM refuses key logins); undefined: unknown (not root) */
  locked: boolean | undefined;
}

export interface ObservedPath {
  type: 'dir' | 'file' | 'symlink' | 'other';
  /** permission bits (`& 0o7777`) */
  mode: number;
  uid: number;
  gid: number;
  /** utf-8 content of a small regular file the planner asked to read */
  content?: string;
}

/** One step of an install. `owner` is a user name; the group is that user's primary group. */
export type Action =
  | { type: 'user'; name: string; home: string; change: Change; detail: string }
  | { type: 'dir'; path: string; mode: number; owner: string; change: Change; detail: string }
  | {
      type: 'file';
      path: string;
      mode: number;
      owner: string;
      content: string;
      change: Change;
      detail: string;
    }
  | { type: 'keypair'; path: string; change: Change; detail: string }
  | { type: 'print'; text: string };

export type Scheduler = 'systemd' | 'cron';

export interface InstallOptions {
  /** argv that runs baton, e.g. [`/usr/bin/node`, `/usr/lib/node_modules/baton/dist/cli/main.js`] */
  baton: readonly string[];
  /** absolute path of the config file the units, cron lines and forced commands name */
  configFile: string;
  scheduler: Scheduler;
  unitDir: string;
  cronDir: string;
  /** OnCalendar= of the source backup, or of the sink's data pull */
  onCalendar?: string;
  /** OnCalendar= of the sink's logs pull */
  onCalendarLogs?: string;
  /** OnCalendar= of the weekly `verify --all --deep` (default DEFAULT_CALENDAR.verify) */
  verifyCalendar?: string;
  /** source: `from=` patterns of the sink's address */
  from?: string;
  /** source: the user CA's public key line (certificate logins: a `cert-authority` line) */
  caKey?: string;
  /** source: the sink's public key line per stream */
  sinkKeys?: Partial<Record<StreamName, string>>;
  host: HostState;
}

/** Home of a stream user that install creates (useradd's Debian default, made explicit so it is known up front). */
export const newUserHome = (name: string): string => `/home/${name}`;

export const PARENT_MODE = 0o755;

/**
 * Given the config and options of one host, returns what `baton install source|sink` would do there,
 * in order, each action marked create / update / none against `opts.host`. Throws ConfigError for
 * options that do not fit together and JobError when the host is in a state install must not repair
 * (a regular file where a directory belongs, a user without a usable home).
 */
export function planInstall(kind: 'source', config: SourceConfig, opts: InstallOptions): Action[];
export function planInstall(kind: 'sink', config: SinkConfig, opts: InstallOptions): Action[];
export function planInstall(
  kind: 'source' | 'sink',
  config: SourceConfig | SinkConfig,
  opts: InstallOptions,
): Action[];
export function planInstall(
  kind: 'source' | 'sink',
  config: SourceConfig | SinkConfig,
  opts: InstallOptions,
): Action[] {
  return wanted(kind, config, opts).flatMap((w) => decide(w, opts.host));
}

/** The stream users `planInstall` looks at: observe.ts reads them first (their homes decide paths). */
export function installUsers(kind: 'source' | 'sink', config: SourceConfig | SinkConfig): string[] {
  return kind === 'source' && 'app' in config ? [...new Set(sourceStreams(config).map((s) => s.user))] : [];
}

/**
 * The paths `planInstall` looks at, given `opts.host.users` (paths not needed yet): `stat` to lstat,
 * `read` also to read (small regular files: what install writes or prints).
 */
export function installTargets(
  kind: 'source' | 'sink',
  config: SourceConfig | SinkConfig,
  opts: InstallOptions,
): { stat: string[]; read: string[] } {
  const stat = new Set<string>();
  const read = new Set<string>();
  for (const w of wanted(kind, config, opts)) {
    if (w.type === 'dir') stat.add(w.path);
    if (w.type === 'file') read.add(w.path);
    if (w.type === 'keypair') {
      stat.add(w.path);
      read.add(`${w.path}.pub`);
    }
    if (w.type === 'note') {
      for (const p of w.stat) stat.add(p);
      for (const p of w.read) read.add(p);
    }
  }
  for (const p of read) stat.delete(p);
  return { stat: [...stat], read: [...read] };
}

function wanted(kind: 'source' | 'sink', config: SourceConfig | SinkConfig, opts: InstallOptions): Wanted[] {
  if (kind === 'source' && 'app' in config) return wantSource(config, opts);
  if (kind === 'sink' && 'sources' in config) return wantSink(config, opts);
  throw new Error(`planInstall: a ${kind} install needs a ${kind} config`);
}

// ---------------------------------------------------------------------------------------------
// Wanted state

type Wanted =
  | { type: 'user'; name: string }
  | { type: 'dir'; path: string; mode: number; owner: string; onlyIfMissing?: boolean; why: string }
  | {
      type: 'file';
      path: string;
      mode: number;
      owner: string;
      content: string;
      /** an existing regular file is left as it is (content, mode and owner are the operator's) */
      onlyIfMissing?: boolean;
      why: string;
    }
  | { type: 'keypair'; path: string; why: string }
  | {
      type: 'note';
      /** paths the text looks at: `stat` for type and mode, `read` for content too */
      stat: readonly string[];
      read: readonly string[];
      text: (host: HostState) => string | undefined;
    };

const configError = (msg: string) => new ConfigError(msg, { step: 'install' });

function checkPrintable(what: string, value: string): void {
  if (hasControlCharacters(value))
    throw configError(`${what} contains control characters: ${JSON.stringify(value)}`);
}

/** Every ancestor of `path` below `/`, outermost first. */
function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let p = dirname(path); p !== '/' && p !== '.'; p = dirname(p)) out.unshift(p);
  return out;
}

/** Directories with their missing parents (root, 0755) in front; a path wanted twice is kept once. */
function withParents(dirs: ReadonlyArray<Extract<Wanted, { type: 'dir' }>>): Wanted[] {
  const out: Array<Extract<Wanted, { type: 'dir' }>> = [];
  const at = new Map<string, number>();
  const add = (d: Extract<Wanted, { type: 'dir' }>) => {
    const i = at.get(d.path);
    if (i === undefined) {
      at.set(d.path, out.length);
      out.push(d);
    } else if (out[i]?.onlyIfMissing && !d.onlyIfMissing) {
      out[i] = d;
    }
  };
  for (const d of dirs) {
    for (const p of ancestors(d.path)) {
      add({ type: 'dir', path: p, mode: PARENT_MODE, owner: 'root', onlyIfMissing: true, why: 'parent' });
    }
    add(d);
  }
  return out;
}

function calendar(option: string, value: string | undefined, fallback: string): string {
  const spec = value ?? fallback;
  const problem = checkCalendar(spec);
  if (problem !== undefined) throw configError(`${option}: ${problem}`);
  return spec;
}

function cronFields(option: string, spec: string, weekly = false): string {
  const c = weekly ? cronWeeklyScheduleOf(spec) : cronScheduleOf(spec);
  if (!c.ok) throw configError(`${option}: ${c.error}`);
  return c.fields;
}

/** The weekly verify's OnCalendar= (`--verify-calendar`, checked) and, for --cron, its cron fields. */
function verifyCalendar(opts: InstallOptions): { verifyCalendar: string; verifyCronFields: string } {
  const spec = calendar('--verify-calendar', opts.verifyCalendar, DEFAULT_CALENDAR.verify);
  return {
    verifyCalendar: spec,
    verifyCronFields: opts.scheduler === 'cron' ? cronFields('--verify-calendar', spec, true) : '',
  };
}

function commonChecks(opts: InstallOptions): void {
  if (opts.baton.length === 0 || !opts.baton[0]?.startsWith('/')) {
    throw configError(`--baton must be an absolute path (got ${JSON.stringify(opts.baton[0] ?? '')})`);
  }
  for (const a of opts.baton) checkPrintable('--baton', a);
  if (!opts.configFile.startsWith('/'))
    throw configError(`the config file must be an absolute path: ${opts.configFile}`);
  checkPrintable('the config file path', opts.configFile);
}

/** The forced command of a stream user's key, as the text of `command="…"`. */
export function gateCommand(baton: readonly string[], stream: StreamName, configFile: string): string {
  return shellJoin([...baton, 'gate', stream, '--config', configFile]);
}

/**
 * A stream user's one authorized_keys line: `restrict,[from=…,]command="<baton> gate STREAM --config F" KEY`,
 * or with a user CA `cert-authority,principals="USER",restrict,…  CA-KEY` (docs/design.md §3).
 */
export function authorizedKeyLine(o: {
  baton: readonly string[];
  stream: StreamName;
  user: string;
  configFile: string;
  from?: string;
  key: string;
  certAuthority: boolean;
}): string {
  const options = [
    ...(o.certAuthority ? ['cert-authority', `principals=${authorizedKeysOptionValue(o.user)}`] : []),
    'restrict',
    ...(o.from === undefined ? [] : [`from=${authorizedKeysOptionValue(o.from)}`]),
    `command=${authorizedKeysOptionValue(gateCommand(o.baton, o.stream, o.configFile))}`,
  ];
  return `${options.join(',')} ${o.key}`;
}

const hasSinkKeys = (opts: InstallOptions): boolean =>
  opts.sinkKeys !== undefined && Object.values(opts.sinkKeys).some((k) => k !== undefined);

const FROM_PATTERN = /^!?[A-Za-z0-9.:*?/_-]+(,!?[A-Za-z0-9.:*?/_-]+)*$/;

function sourceStreams(config: SourceConfig): Array<{ name: StreamName; user: string; handover: string }> {
  const out: Array<{ name: StreamName; user: string; handover: string }> = [
    { name: 'data', user: config.streams.data.user, handover: config.streams.data.handover },
  ];
  const logs = config.streams.logs;
  if (logs) out.push({ name: 'logs', user: logs.user, handover: logs.handover });
  return out;
}

/** First path from `/` down to `path` that a user other than its owner cannot pass (or read, for the file itself). */
function blockedForOthers(path: string, host: HostState, need: 'read' | 'exec'): string | undefined {
  for (const dir of ancestors(path)) {
    const st = host.paths.get(dir);
    if (st && st.type === 'dir' && (st.mode & 0o001) === 0) return dir;
  }
  const st = host.paths.get(path);
  if (st && st.type !== 'dir' && (st.mode & (need === 'read' ? 0o004 : 0o001)) === 0) return path;
  return undefined;
}

function wantSource(config: SourceConfig, opts: InstallOptions): Wanted[] {
  commonChecks(opts);
  const streams = sourceStreams(config);
  if (new Set(streams.map((s) => s.user)).size !== streams.length) {
    throw configError(
      "streams.data.user and streams.logs.user must differ: each stream user may run only its own stream's gate",
    );
  }
  if (opts.from !== undefined && !FROM_PATTERN.test(opts.from)) {
    throw configError(
      `--from ${JSON.stringify(opts.from)}: expected addresses or patterns like 203.0.113.7 or 10.0.0.0/8,192.0.2.*`,
    );
  }
  if (opts.caKey !== undefined && hasSinkKeys(opts)) {
    throw configError(
      'give either --ca-key (certificate logins) or --sink-key-data/--sink-key-logs, not both',
    );
  }
  if (opts.sinkKeys?.logs !== undefined && !config.streams.logs) {
    throw configError('--sink-key-logs: this source has no logs stream (streams.logs)');
  }
  if (opts.onCalendarLogs !== undefined) throw configError('--on-calendar-logs is for `baton install sink`');
  const onCalendar = calendar('--on-calendar', opts.onCalendar, DEFAULT_CALENDAR.sourceBackup);

  const out: Wanted[] = streams.map((s) => ({ type: 'user', name: s.user }));
  out.push(
    ...withParents([
      {
        type: 'dir',
        path: config.stateDir,
        mode: 0o700,
        owner: 'root',
        why: 'state: mirrors, run records, locks',
      },
      ...streams.map((s): Extract<Wanted, { type: 'dir' }> => ({
        type: 'dir',
        path: s.handover,
        mode: 0o750,
        owner: s.user,
        why: `${s.name} handover`,
      })),
      {
        type: 'dir',
        path: config.streams.data.store,
        mode: 0o750,
        owner: config.streams.data.user,
        why: 'source store',
      },
    ]),
  );

  for (const s of streams) {
    const home = opts.host.users.get(s.user)?.home ?? newUserHome(s.user);
    if (home === '/' || home === '/nonexistent' || !home.startsWith('/')) {
      throw new JobError(
        `user ${s.user} has no usable home directory (${home}) for ~/.ssh/authorized_keys: give it one with \`usermod -d /home/${s.user} -m ${s.user}\``,
        { step: 'install' },
      );
    }
    const sshDir = join(home, '.ssh');
    const keysFile = join(sshDir, 'authorized_keys');
    const sinkKey = opts.sinkKeys?.[s.name];
    const key = opts.caKey ?? sinkKey;
    const line = (k: string) =>
      authorizedKeyLine({
        baton: opts.baton,
        stream: s.name,
        user: s.user,
        configFile: opts.configFile,
        ...(opts.from === undefined ? {} : { from: opts.from }),
        key: k,
        certAuthority: opts.caKey !== undefined,
      });
    if (key === undefined) {
      const placeholder = `<the sink's public key for ${s.name}: ssh-ed25519 AAAA…>`;
      out.push({
        type: 'note',
        stat: [],
        read: [keysFile],
        text: (host) => {
          const existing = host.paths.get(keysFile)?.content;
          const gate = gateCommand(opts.baton, s.name, opts.configFile);
          if (existing?.includes(`command=${authorizedKeysOptionValue(gate)}`)) {
            return `${keysFile} has a gate line for ${s.name} already (left as it is; pass --sink-key-${s.name} FILE or --ca-key FILE to replace it)`;
          }
          return (
            `no key for ${s.user} given: put exactly this line in ${keysFile} (0600, owned by ${s.user}; dir 0700),\n` +
            `  or rerun with --sink-key-${s.name} FILE (the sink's .pub) or --ca-key FILE (your user CA):\n` +
            `    ${line(placeholder)}`
          );
        },
      });
    } else {
      out.push(
        { type: 'dir', path: sshDir, mode: 0o700, owner: s.user, why: `${s.user}'s ssh dir` },
        {
          type: 'file',
          path: keysFile,
          mode: 0o600,
          owner: s.user,
          content: `${line(key)}\n`,
          why: `the sink's only way in: \`baton gate ${s.name}\``,
        },
      );
    }
  }

  const schedule = {
    baton: opts.baton,
    configFile: opts.configFile,
    onCalendar,
    appStartTimeoutMs: config.app.startTimeout,
    ...verifyCalendar(opts),
  };
  if (opts.scheduler === 'cron') {
    out.push({
      type: 'file',
      path: join(opts.cronDir, 'baton-source'),
      mode: 0o644,
      owner: 'root',
      content: sourceCronFile({ ...schedule, cronFields: cronFields('--on-calendar', onCalendar) }),
      why: 'cron: nightly backup, recover at boot, weekly deep verify',
    });
  } else {
    for (const u of sourceUnits(schedule)) {
      out.push({
        type: 'file',
        path: join(opts.unitDir, u.name),
        mode: 0o644,
        owner: 'root',
        content: u.content,
        why: 'systemd unit',
      });
    }
  }

  // The gate runs as the stream users: they must reach baton and read the config.
  const reach: Array<[string, 'read' | 'exec']> = [
    [opts.configFile, 'read'],
    ...opts.baton
      .filter((a) => a.startsWith('/'))
      .map((a, i): [string, 'read' | 'exec'] => [a, i === 0 ? 'exec' : 'read']),
  ];
  for (const [path, need] of reach) {
    out.push({
      type: 'note',
      stat: [...ancestors(path), path],
      read: [],
      text: (host) => {
        const blocked = blockedForOthers(path, host, need);
        return blocked === undefined
          ? undefined
          : `WARNING: the stream users cannot ${need === 'read' ? 'read' : 'run'} ${path} (${blocked} is closed to others): the gate will fail; make it readable (secrets belong in separate files)`;
      },
    });
  }
  out.push({ type: 'note', stat: [], read: [], text: () => sourceNextSteps(opts, streams) });
  return out;
}

function sourceNextSteps(opts: InstallOptions, streams: ReadonlyArray<{ name: StreamName }>): string {
  const cfg = shellJoin([opts.configFile]);
  const steps = [
    `next: baton config check --config ${cfg} && baton source backup --dry-run --config ${cfg}`,
    `      then one real run: baton source backup --config ${cfg}`,
  ];
  if (opts.scheduler === 'systemd') {
    steps.push(
      '      then: systemctl daemon-reload && systemctl enable --now baton-source-backup.timer baton-source-verify.timer baton-source-recover.service',
    );
  }
  steps.push(
    `      on the sink: baton sink pull ${streams.map((s) => s.name).join(' / ')} once, then baton status on both hosts`,
  );
  return steps.join('\n');
}

function sinkStreams(config: SinkConfig): StreamName[] {
  return STREAMS.filter((stream) => config.sources.some((s) => s.streams[stream] !== undefined));
}

/** A known_hosts line for host:port starts with `host` (port 22) or `[host]:port` (plain, not hashed). */
function pinsHost(content: string | undefined, host: string, port: number): boolean {
  if (content === undefined) return false;
  const name = port === 22 ? host : `[${host}]:${port}`;
  return content.split('\n').some((l) => {
    const hosts = l.trim().split(/\s+/)[0] ?? '';
    return hosts.split(',').includes(name);
  });
}

function wantSink(config: SinkConfig, opts: InstallOptions): Wanted[] {
  commonChecks(opts);
  for (const [option, set] of [
    ['--from', opts.from !== undefined],
    ['--ca-key', opts.caKey !== undefined],
    ['--sink-key-data / --sink-key-logs', hasSinkKeys(opts)],
  ] as const) {
    if (set) throw configError(`${option} is for \`baton install source\``);
  }
  const streams = sinkStreams(config);
  const calendars: Record<StreamName, string> = {
    data: calendar('--on-calendar', opts.onCalendar, DEFAULT_CALENDAR.sinkPull.data),
    logs: calendar('--on-calendar-logs', opts.onCalendarLogs, DEFAULT_CALENDAR.sinkPull.logs),
  };
  const verify = verifyCalendar(opts);
  const keyDirs = config.sources.flatMap((src) =>
    STREAMS.flatMap((stream) => {
      const s = src.streams[stream];
      return s ? [dirname(s.identity)] : [];
    }),
  );
  for (const src of config.sources) {
    for (const stream of STREAMS) {
      const s = src.streams[stream];
      if (s) checkPrintable(`sources ${src.name} streams.${stream}.identity`, s.identity);
    }
  }
  const out: Wanted[] = withParents([
    { type: 'dir', path: config.stateDir, mode: 0o700, owner: 'root', why: 'state: run records, locks' },
    { type: 'dir', path: config.store, mode: 0o750, owner: 'root', why: 'sink store' },
    ...keyDirs.map((d): Extract<Wanted, { type: 'dir' }> => ({
      type: 'dir',
      path: d,
      mode: 0o700,
      owner: 'root',
      onlyIfMissing: true,
      why: 'ssh keys',
    })),
  ]);
  out.push({
    type: 'file',
    path: join(config.store, STORE_MARKER),
    mode: 0o644,
    owner: 'root',
    content: STORE_MARKER_CONTENT,
    onlyIfMissing: true,
    why: 'sink store marker: pulls refuse a store without it (an unmounted disk)',
  });

  for (const src of config.sources) {
    for (const stream of STREAMS) {
      const s = src.streams[stream];
      if (!s) continue;
      out.push({ type: 'keypair', path: s.identity, why: `${src.name} ${stream}: logs in as ${s.user}` });
      const pub = `${s.identity}.pub`;
      out.push({
        type: 'note',
        stat: [`${s.identity}-cert.pub`],
        read: [pub],
        text: (host) => {
          const key = host.paths.get(pub)?.content?.trim();
          const shown = key ?? `<the public key in ${pub}, made by this install>`;
          const cert = host.paths.has(`${s.identity}-cert.pub`)
            ? `\n  a certificate ${s.identity}-cert.pub is used too: on the source, install your CA with \`baton install source --ca-key CA.pub\` instead.`
            : '';
          return (
            `source ${src.name} (${src.host}), stream ${stream}: the sink logs in as ${s.user} with ${s.identity}.\n` +
            `  public key: ${shown}\n` +
            `  on the source, save it to a file and run \`baton install source --sink-key-${stream} FILE\`, or put this line in ~${s.user}/.ssh/authorized_keys there:\n` +
            `    ${authorizedKeyLine({ baton: ['baton'], stream, user: s.user, configFile: '/etc/baton/source.yaml', key: shown, certAuthority: false })}` +
            cert
          );
        },
      });
    }
    out.push({
      type: 'note',
      stat: [],
      read: [src.knownHosts],
      text: (host) => {
        if (pinsHost(host.paths.get(src.knownHosts)?.content, src.host, src.port)) {
          return `source ${src.name}: ${src.knownHosts} pins a host key for ${src.host}${src.port === 22 ? '' : `:${src.port}`} (check it once: \`ssh-keygen -lf ${src.knownHosts}\` against the source)`;
        }
        // mktemp, not a fixed /tmp name another local user could plant a symlink at.
        const tmp = '"$hostkey"';
        return (
          `source ${src.name}: pin its host key in ${src.knownHosts} (baton never accepts an unknown host key):\n` +
          `    hostkey=$(mktemp)\n` +
          `    ssh-keyscan -p ${src.port} -t ed25519 ${src.host} > ${tmp}\n` +
          `    ssh-keygen -lf ${tmp}        # COMPARE with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` run on the source itself\n` +
          `    cat ${tmp} >> ${src.knownHosts}   # only when the two fingerprints are the same`
        );
      },
    });
  }

  if (opts.scheduler === 'cron') {
    out.push({
      type: 'file',
      path: join(opts.cronDir, 'baton-sink'),
      mode: 0o644,
      owner: 'root',
      content: sinkCronFile({
        baton: opts.baton,
        configFile: opts.configFile,
        verifyCronFields: verify.verifyCronFields,
        streams: streams.map((stream) => ({
          stream,
          cronFields: cronFields(
            stream === 'data' ? '--on-calendar' : '--on-calendar-logs',
            calendars[stream],
          ),
        })),
      }),
      why: 'cron: nightly pulls, weekly deep verify',
    });
  } else {
    const units = sinkUnits({
      baton: opts.baton,
      configFile: opts.configFile,
      verifyCalendar: verify.verifyCalendar,
      streams: streams.map((stream) => ({ stream, onCalendar: calendars[stream] })),
    });
    for (const u of units) {
      out.push({
        type: 'file',
        path: join(opts.unitDir, u.name),
        mode: 0o644,
        owner: 'root',
        content: u.content,
        why: 'systemd unit',
      });
    }
  }
  const cfg = shellJoin([opts.configFile]);
  out.push({
    type: 'note',
    stat: [],
    read: [],
    text: () =>
      [
        `next: baton config check --config ${cfg}; once a source has handed over a generation: ${streams.map((s) => `baton sink pull ${s} --config ${cfg}`).join('; ')}`,
        ...(opts.scheduler === 'systemd'
          ? [
              `      then: systemctl daemon-reload && systemctl enable --now ${streams.map((s) => `baton-sink-pull-${s}.timer`).join(' ')} baton-sink-verify.timer`,
            ]
          : []),
        `      and: baton status --config ${cfg}`,
      ].join('\n'),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decisions against the observed host

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;

function ownerIds(owner: string, host: HostState): { uid: number; gid: number } | undefined {
  if (owner === 'root') return { uid: 0, gid: 0 };
  const u = host.users.get(owner);
  return u ? { uid: u.uid, gid: u.gid } : undefined;
}

function nameOf(uid: number, host: HostState): string {
  if (uid === 0) return 'root';
  for (const [name, u] of host.users) if (u.uid === uid) return name;
  return `uid ${uid}`;
}

/** What differs between an existing path and the wanted owner and mode ('' when nothing). */
function ownershipDiff(st: ObservedPath, mode: number, owner: string, host: HostState): string {
  const ids = ownerIds(owner, host);
  const diffs: string[] = [];
  if (st.mode !== mode) diffs.push(`mode was ${octal(st.mode)}`);
  if (!ids || st.uid !== ids.uid || st.gid !== ids.gid) diffs.push(`owner was ${nameOf(st.uid, host)}`);
  return diffs.join(', ');
}

function decide(w: Wanted, host: HostState): Action[] {
  switch (w.type) {
    case 'user': {
      const u = host.users.get(w.name);
      if (!u) {
        const home = newUserHome(w.name);
        return [
          {
            type: 'user',
            name: w.name,
            home,
            change: 'create',
            detail: `system user, home ${home}, shell /bin/sh, password '*' (no password; key logins only)`,
          },
        ];
      }
      if (u.locked === true) {
        return [
          {
            type: 'user',
            name: w.name,
            home: u.home,
            change: 'update',
            detail: "password field '!' (locked: sshd without PAM refuses even key logins) → '*'",
          },
        ];
      }
      return [
        {
          type: 'user',
          name: w.name,
          home: u.home,
          change: 'none',
          detail: u.locked === undefined ? 'exists (password state not readable: not root)' : 'exists',
        },
      ];
    }
    case 'dir': {
      const st = host.paths.get(w.path);
      const base = { type: 'dir' as const, path: w.path, mode: w.mode, owner: w.owner };
      if (!st) return [{ ...base, change: 'create', detail: w.why }];
      if (st.type !== 'dir' && !(w.onlyIfMissing && st.type === 'symlink')) {
        throw new JobError(
          `${w.path} (${w.why}) exists but is a ${st.type}, not a directory; move it away first`,
          {
            step: 'install',
          },
        );
      }
      if (w.onlyIfMissing) return [];
      const diff = ownershipDiff(st, w.mode, w.owner, host);
      return [{ ...base, change: diff ? 'update' : 'none', detail: diff ? `${w.why}; ${diff}` : w.why }];
    }
    case 'file': {
      const st = host.paths.get(w.path);
      const base = { type: 'file' as const, path: w.path, mode: w.mode, owner: w.owner, content: w.content };
      if (!st) return [{ ...base, change: 'create', detail: w.why }];
      if (st.type !== 'file') {
        throw new JobError(
          `${w.path} (${w.why}) exists but is a ${st.type}, not a regular file; move it away first`,
          {
            step: 'install',
          },
        );
      }
      if (w.onlyIfMissing) return [{ ...base, change: 'none', detail: w.why }];
      const diffs = [
        st.content === w.content ? '' : 'content differs',
        ownershipDiff(st, w.mode, w.owner, host),
      ].filter((d) => d !== '');
      return [
        {
          ...base,
          change: diffs.length ? 'update' : 'none',
          detail: diffs.length ? `${w.why}; ${diffs.join(', ')}` : w.why,
        },
      ];
    }
    case 'keypair': {
      const key = host.paths.get(w.path);
      const pub = host.paths.get(`${w.path}.pub`);
      if (!key) {
        if (pub) {
          throw new JobError(`${w.path}.pub exists without its private key ${w.path}; move it away first`, {
            step: 'install',
          });
        }
        return [
          {
            type: 'keypair',
            path: w.path,
            change: 'create',
            detail: `ssh-keygen -t ed25519 (0600 root); ${w.why}`,
          },
        ];
      }
      if (key.type !== 'file') {
        throw new JobError(`${w.path} exists but is a ${key.type}, not a private key file`, {
          step: 'install',
        });
      }
      const fixes = [
        ...(pub ? [] : [`${w.path}.pub missing: derived with ssh-keygen -y`]),
        ...(key.mode !== 0o600 || key.uid !== 0
          ? [`private key mode ${octal(key.mode)} owner ${nameOf(key.uid, host)} → 0600 root`]
          : []),
      ];
      return [
        {
          type: 'keypair',
          path: w.path,
          change: fixes.length ? 'update' : 'none',
          detail: fixes.length ? fixes.join('; ') : `exists; ${w.why}`,
        },
      ];
    }
    case 'note': {
      const text = w.text(host);
      return text === undefined ? [] : [{ type: 'print', text }];
    }
  }
}

/** True when running the plan would change something. */
export function hasChanges(actions: readonly Action[]): boolean {
  return actions.some((a) => a.type !== 'print' && a.change !== 'none');
}
