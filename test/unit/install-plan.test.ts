import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import type { SinkConfig, SourceConfig } from '../../src/config/schema.js';
import { BatonError, ConfigError, ExitCode, JobError } from '../../src/errors.js';
import {
  authorizedKeyLine,
  hasChanges,
  installTargets,
  installUsers,
  planInstall,
  type Action,
  type HostState,
  type InstallOptions,
  type ObservedPath,
  type ObservedUser,
} from '../../src/install/plan.js';
import { parsePublicKey } from '../../src/install/public-key.js';
import { cronCommand, shellQuote, systemdQuote } from '../../src/install/quote.js';
import { checkCalendar, cronScheduleOf, cronWeeklyScheduleOf } from '../../src/install/schedule.js';
import { packagedUnits } from '../../src/cli/packaged-units.js';
import { isUnitName } from '../../src/adapters/journal.js';

const SINK_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPATqA8NLav1/5ENNuF5sBMKhmdMFVRzl1jsAbsIP7V3 sink-data';
const CA_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWiAF8vRU3lUxJLHQfsE9N72D7ZB3ip9bZ3GTVWtda7 backup-ca';
const BATON = ['/usr/bin/baton'];
const SOURCE_FILE = '/etc/baton/source.yaml';
const SINK_FILE = '/etc/baton/sink.yaml';

const SOURCE: SourceConfig = parseConfigText(
  `name: shop-prod
stateDir: /var/lib/baton/state
app: { stop: systemctl stop shop, start: systemctl start shop, startTimeout: 3m }
streams:
  data:
    paths: [/srv/shop/data]
    handover: /var/lib/baton/handover/data
    user: dataBackupSource
    store: /var/backups/baton/source-store
  logs:
    paths: [/var/log/shop]
    handover: /var/lib/baton/handover/logs
    user: logBackupSource
`,
  'source.yaml',
  'source',
);

const SINK: SinkConfig = parseConfigText(
  `store: /srv/backups/baton
stateDir: /var/lib/baton/sink-state
sources:
  - name: shop-prod
    host: shop.example.com
    port: 2222
    knownHosts: /etc/baton/known_hosts
    streams:
      data: { user: dataBackupSource, identity: /etc/baton/keys/shop-data, generations: 14 }
      logs: { user: logBackupSource, identity: /etc/baton/keys/shop-logs, generations: 30 }
`,
  'sink.yaml',
  'sink',
);

const SINK_DATA_ONLY: SinkConfig = parseConfigText(
  `store: /srv/backups/baton
sources:
  - name: web
    host: 192.0.2.10
    knownHosts: /etc/baton/known_hosts
    streams:
      data: { user: dataBackupSource, identity: /etc/baton/keys/web-data, generations: 7 }
`,
  'sink.yaml',
  'sink',
);

/** The parts of a host that exist on every Debian system. */
function baseHost(): { users: Map<string, ObservedUser>; paths: Map<string, ObservedPath> } {
  const dir = (mode = 0o755): ObservedPath => ({ type: 'dir', mode, uid: 0, gid: 0 });
  return {
    users: new Map(),
    paths: new Map([
      ['/var', dir()],
      ['/var/lib', dir()],
      ['/var/backups', dir()],
      ['/etc', dir()],
      ['/srv', dir()],
      ['/home', dir()],
      ['/etc/systemd', dir()],
      ['/etc/systemd/system', dir()],
      ['/etc/cron.d', dir()],
      ['/usr', dir()],
      ['/usr/bin', dir()],
      ['/usr/bin/baton', { type: 'file', mode: 0o755, uid: 0, gid: 0 }],
      ['/etc/baton', dir()],
      [SOURCE_FILE, { type: 'file', mode: 0o644, uid: 0, gid: 0 }],
      [SINK_FILE, { type: 'file', mode: 0o644, uid: 0, gid: 0 }],
    ]),
  };
}

function options(host: HostState, over: Partial<InstallOptions> = {}): InstallOptions {
  return {
    baton: BATON,
    configFile: SOURCE_FILE,
    scheduler: 'systemd',
    unitDir: '/etc/systemd/system',
    cronDir: '/etc/cron.d',
    host,
    ...over,
  };
}

const changed = (actions: readonly Action[]) =>
  actions.flatMap((a) =>
    a.type === 'print' || a.change === 'none'
      ? []
      : [`${a.change} ${a.type} ${a.type === 'user' ? a.name : a.path}`],
  );
const files = (actions: readonly Action[]) =>
  new Map(actions.flatMap((a) => (a.type === 'file' ? [[a.path, a] as const] : [])));
const dirs = (actions: readonly Action[]) =>
  new Map(actions.flatMap((a) => (a.type === 'dir' ? [[a.path, a] as const] : [])));
const notes = (actions: readonly Action[]) => actions.flatMap((a) => (a.type === 'print' ? [a.text] : []));

/**
 * An in-memory host after the actions ran: what apply.ts does, on maps. New users get ids from 1000;
 * a new key pair gets a fixed public key.
 */
function applyToHost(before: HostState, actions: readonly Action[]): HostState {
  const users = new Map(before.users);
  const paths = new Map(before.paths);
  let nextId = 1000 + users.size;
  const ids = (owner: string) => (owner === 'root' ? { uid: 0, gid: 0 } : users.get(owner)!);
  for (const a of actions) {
    if (a.type === 'print' || a.change === 'none') continue;
    if (a.type === 'user') {
      const existing = users.get(a.name);
      users.set(
        a.name,
        existing
          ? { ...existing, locked: false }
          : { uid: nextId, gid: nextId++, home: a.home, locked: false },
      );
      if (!paths.has(a.home)) paths.set(a.home, { type: 'dir', mode: 0o755, ...ids(a.name) });
    } else if (a.type === 'dir') {
      paths.set(a.path, { type: 'dir', mode: a.mode, ...ids(a.owner) });
    } else if (a.type === 'file') {
      paths.set(a.path, { type: 'file', mode: a.mode, ...ids(a.owner), content: a.content });
    } else {
      paths.set(a.path, { type: 'file', mode: 0o600, uid: 0, gid: 0 });
      paths.set(`${a.path}.pub`, { type: 'file', mode: 0o644, uid: 0, gid: 0, content: `${SINK_KEY}\n` });
    }
  }
  return { users, paths };
}

describe('planInstall source', () => {
  test('empty host -> users, state dir 0700 root, handovers and store 0750 owned by the stream users, units', () => {
    const actions = planInstall('source', SOURCE, options(baseHost()));
    assert.deepEqual(changed(actions), [
      'create user dataBackupSource',
      'create user logBackupSource',
      'create dir /var/lib/baton',
      'create dir /var/lib/baton/state',
      'create dir /var/lib/baton/handover',
      'create dir /var/lib/baton/handover/data',
      'create dir /var/lib/baton/handover/logs',
      'create dir /var/backups/baton',
      'create dir /var/backups/baton/source-store',
      'create file /etc/systemd/system/baton-source-backup.service',
      'create file /etc/systemd/system/baton-source-backup.timer',
      'create file /etc/systemd/system/baton-source-recover.service',
      'create file /etc/systemd/system/baton-source-verify.service',
      'create file /etc/systemd/system/baton-source-verify.timer',
      'create file /etc/systemd/system/baton-source-failure@.service',
    ]);
    const d = dirs(actions);
    assert.deepEqual(
      [...d.values()].map((a) => [a.path, a.mode.toString(8), a.owner]),
      [
        ['/var/lib/baton', '755', 'root'],
        ['/var/lib/baton/state', '700', 'root'],
        ['/var/lib/baton/handover', '755', 'root'],
        ['/var/lib/baton/handover/data', '750', 'dataBackupSource'],
        ['/var/lib/baton/handover/logs', '750', 'logBackupSource'],
        ['/var/backups/baton', '755', 'root'],
        ['/var/backups/baton/source-store', '750', 'dataBackupSource'],
      ],
    );
    const user = actions.find((a) => a.type === 'user');
    assert.equal(user?.type === 'user' ? user.home : '', '/home/dataBackupSource');
  });

  test('no key given -> no authorized_keys written, the line is printed with a placeholder', () => {
    const actions = planInstall('source', SOURCE, options(baseHost()));
    assert.ok(![...files(actions).keys()].some((p) => p.includes('authorized_keys')));
    const text = notes(actions).join('\n');
    assert.match(
      text,
      /restrict,command="\/usr\/bin\/baton gate data --config \/etc\/baton\/source\.yaml" <the sink's public key for data/,
    );
    assert.match(text, /\/home\/logBackupSource\/\.ssh\/authorized_keys/);
    assert.match(text, /--sink-key-logs FILE/);
  });

  test('sink keys and --from -> one restrict,from,command line per stream user, 0600 in a 0700 .ssh', () => {
    const actions = planInstall(
      'source',
      SOURCE,
      options(baseHost(), { from: '203.0.113.7', sinkKeys: { data: SINK_KEY, logs: SINK_KEY } }),
    );
    const f = files(actions);
    const keys = f.get('/home/dataBackupSource/.ssh/authorized_keys');
    assert.equal(
      keys?.content,
      `restrict,from="203.0.113.7",command="/usr/bin/baton gate data --config /etc/baton/source.yaml" ${SINK_KEY}\n`,
    );
    assert.equal(keys.mode, 0o600);
    assert.equal(keys.owner, 'dataBackupSource');
    assert.match(
      f.get('/home/logBackupSource/.ssh/authorized_keys')?.content ?? '',
      /command="\/usr\/bin\/baton gate logs /,
    );
    const ssh = dirs(actions).get('/home/dataBackupSource/.ssh');
    assert.deepEqual([ssh?.mode, ssh?.owner, ssh?.change], [0o700, 'dataBackupSource', 'create']);
  });

  test('--ca-key -> cert-authority,principals=<user> line with the CA key', () => {
    const actions = planInstall('source', SOURCE, options(baseHost(), { caKey: CA_KEY }));
    assert.equal(
      files(actions).get('/home/dataBackupSource/.ssh/authorized_keys')?.content,
      `cert-authority,principals="dataBackupSource",restrict,command="/usr/bin/baton gate data --config /etc/baton/source.yaml" ${CA_KEY}\n`,
    );
    assert.match(
      files(actions).get('/home/logBackupSource/.ssh/authorized_keys')?.content ?? '',
      /^cert-authority,principals="logBackupSource",restrict,command=/,
    );
  });

  test('an existing user with another home -> authorized_keys under that home', () => {
    const host = baseHost();
    host.users.set('dataBackupSource', { uid: 990, gid: 990, home: '/var/lib/dbs', locked: false });
    const actions = planInstall('source', SOURCE, options(host, { sinkKeys: { data: SINK_KEY } }));
    assert.ok(files(actions).has('/var/lib/dbs/.ssh/authorized_keys'));
    assert.deepEqual(installUsers('source', SOURCE), ['dataBackupSource', 'logBackupSource']);
    assert.ok(
      installTargets('source', SOURCE, options(host, { sinkKeys: { data: SINK_KEY } })).read.includes(
        '/var/lib/dbs/.ssh/authorized_keys',
      ),
    );
  });

  test('systemd units: backup with recover as ExecStopPost, timer daily 02:15 persistent, stop timeout covers app start', () => {
    const f = files(planInstall('source', SOURCE, options(baseHost())));
    const service = f.get('/etc/systemd/system/baton-source-backup.service')?.content ?? '';
    assert.match(service, /^Type=oneshot$/m);
    assert.match(service, /^ExecStart=\/usr\/bin\/baton source backup --config \/etc\/baton\/source\.yaml$/m);
    assert.match(
      service,
      /^ExecStopPost=\/usr\/bin\/baton source recover --config \/etc\/baton\/source\.yaml$/m,
    );
    assert.match(service, /^KillMode=process$/m);
    assert.match(service, /^TimeoutStopSec=240s$/m, 'startTimeout 3m + 60s');
    assert.doesNotMatch(service, /^(NoNewPrivileges|PrivateTmp|ProtectSystem|Nice|IOSchedulingClass)=/m);
    const timer = f.get('/etc/systemd/system/baton-source-backup.timer')?.content ?? '';
    assert.match(timer, /^OnCalendar=\*-\*-\* 02:15:00$/m);
    assert.match(timer, /^Persistent=true$/m);
    assert.match(timer, /^RandomizedDelaySec=5min$/m);
    assert.match(
      f.get('/etc/systemd/system/baton-source-recover.service')?.content ?? '',
      /^WantedBy=multi-user\.target$/m,
    );
  });

  test('--on-calendar -> the timer uses it', () => {
    const f = files(planInstall('source', SOURCE, options(baseHost(), { onCalendar: 'Mon..Fri 01:00' })));
    assert.match(
      f.get('/etc/systemd/system/baton-source-backup.timer')?.content ?? '',
      /^OnCalendar=Mon\.\.Fri 01:00$/m,
    );
  });

  test('--cron -> /etc/cron.d/baton-source with the backup and @reboot recover, no units', () => {
    const actions = planInstall(
      'source',
      SOURCE,
      options(baseHost(), { scheduler: 'cron', onCalendar: '03:30' }),
    );
    const f = files(actions);
    assert.deepEqual([...f.keys()], ['/etc/cron.d/baton-source']);
    const cron = f.get('/etc/cron.d/baton-source')?.content ?? '';
    assert.match(
      cron,
      /^30 3 \* \* \* root \/usr\/bin\/baton source backup --config \/etc\/baton\/source\.yaml$/m,
    );
    assert.match(
      cron,
      /^@reboot root \/usr\/bin\/baton source recover --config \/etc\/baton\/source\.yaml$/m,
    );
    assert.match(cron, /^PATH=.*\/usr\/sbin/m);
  });

  test('a baton path with a space and % -> quoted for systemd, the shell and cron', () => {
    const baton = ['/opt/my baton/bin/baton%1'];
    const f = files(
      planInstall('source', SOURCE, options(baseHost(), { baton, sinkKeys: { data: SINK_KEY } })),
    );
    assert.match(
      f.get('/etc/systemd/system/baton-source-backup.service')?.content ?? '',
      /^ExecStart="\/opt\/my baton\/bin\/baton%%1" source backup/m,
    );
    assert.match(
      f.get('/home/dataBackupSource/.ssh/authorized_keys')?.content ?? '',
      /command="'\/opt\/my baton\/bin\/baton%1' gate data/,
    );
    const cron = files(planInstall('source', SOURCE, options(baseHost(), { baton, scheduler: 'cron' })));
    assert.match(
      cron.get('/etc/cron.d/baton-source')?.content ?? '',
      /root '\/opt\/my baton\/bin\/baton\\%1' source backup/,
    );
  });

  test('config file not readable by others -> a warning that the gate will fail', () => {
    const host = baseHost();
    host.paths.set(SOURCE_FILE, { type: 'file', mode: 0o600, uid: 0, gid: 0 });
    assert.match(
      notes(planInstall('source', SOURCE, options(host))).join('\n'),
      /WARNING: the stream users cannot read \/etc\/baton\/source\.yaml/,
    );
    const ok = notes(planInstall('source', SOURCE, options(baseHost()))).join('\n');
    assert.doesNotMatch(ok, /WARNING/);
  });

  test('baton below a directory closed to others -> a warning', () => {
    const host = baseHost();
    host.paths.set('/root', { type: 'dir', mode: 0o700, uid: 0, gid: 0 });
    const text = notes(
      planInstall(
        'source',
        SOURCE,
        options(host, { baton: ['/usr/bin/node', '/root/baton/dist/cli/main.js'] }),
      ),
    ).join('\n');
    assert.match(
      text,
      /WARNING: the stream users cannot read \/root\/baton\/dist\/cli\/main\.js \(\/root is closed to others\)/,
    );
  });
});

describe('planInstall idempotency decisions', () => {
  const full = (): InstallOptions =>
    options(baseHost(), { from: '198.51.100.0/24', sinkKeys: { data: SINK_KEY, logs: SINK_KEY } });

  test('the host after a run -> planning again changes nothing', () => {
    for (const scheduler of ['systemd', 'cron'] as const) {
      const first = planInstall('source', SOURCE, { ...full(), scheduler });
      assert.ok(hasChanges(first));
      const again = planInstall('source', SOURCE, {
        ...full(),
        scheduler,
        host: applyToHost(full().host, first),
      });
      assert.deepEqual(changed(again), [], scheduler);
      assert.equal(hasChanges(again), false);
    }
    const sink = planInstall('sink', SINK, options(baseHost(), { configFile: SINK_FILE }));
    const sinkAgain = planInstall(
      'sink',
      SINK,
      options(applyToHost(baseHost(), sink), { configFile: SINK_FILE }),
    );
    assert.deepEqual(changed(sinkAgain), []);
  });

  const rows: Array<{
    name: string;
    mutate: (h: HostState & { users: Map<string, ObservedUser>; paths: Map<string, ObservedPath> }) => void;
    expected: string[];
    detail?: RegExp;
  }> = [
    {
      name: 'handover with mode 0755 -> update that dir only',
      mutate: (h) =>
        h.paths.set('/var/lib/baton/handover/data', {
          ...h.paths.get('/var/lib/baton/handover/data')!,
          mode: 0o755,
        }),
      expected: ['update dir /var/lib/baton/handover/data'],
      detail: /mode was 0755/,
    },
    {
      name: 'store owned by root -> update its owner',
      mutate: (h) =>
        h.paths.set('/var/backups/baton/source-store', { type: 'dir', mode: 0o750, uid: 0, gid: 0 }),
      expected: ['update dir /var/backups/baton/source-store'],
      detail: /owner was root/,
    },
    {
      name: 'authorized_keys edited by hand -> rewritten',
      mutate: (h) => {
        const p = '/home/dataBackupSource/.ssh/authorized_keys';
        h.paths.set(p, { ...h.paths.get(p)!, content: `${SINK_KEY}\n` });
      },
      expected: ['update file /home/dataBackupSource/.ssh/authorized_keys'],
      detail: /content differs/,
    },
    {
      name: 'authorized_keys 0644 -> mode fixed',
      mutate: (h) => {
        const p = '/home/logBackupSource/.ssh/authorized_keys';
        h.paths.set(p, { ...h.paths.get(p)!, mode: 0o644 });
      },
      expected: ['update file /home/logBackupSource/.ssh/authorized_keys'],
    },
    {
      name: 'a unit removed -> only that unit written again',
      mutate: (h) => h.paths.delete('/etc/systemd/system/baton-source-backup.timer'),
      expected: ['create file /etc/systemd/system/baton-source-backup.timer'],
    },
    {
      name: 'stream user locked (password "!") -> update the user',
      mutate: (h) => h.users.set('logBackupSource', { ...h.users.get('logBackupSource')!, locked: true }),
      expected: ['update user logBackupSource'],
    },
    {
      name: 'password state unknown (not root) -> the user is left alone',
      mutate: (h) =>
        h.users.set('logBackupSource', { ...h.users.get('logBackupSource')!, locked: undefined }),
      expected: [],
    },
    {
      name: 'an existing parent with an odd mode -> not touched',
      mutate: (h) => h.paths.set('/var/lib/baton', { type: 'dir', mode: 0o711, uid: 0, gid: 0 }),
      expected: [],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const first = planInstall('source', SOURCE, full());
      const host = applyToHost(full().host, first) as HostState & {
        users: Map<string, ObservedUser>;
        paths: Map<string, ObservedPath>;
      };
      row.mutate(host);
      const again = planInstall('source', SOURCE, { ...full(), host });
      assert.deepEqual(changed(again), row.expected);
      if (row.detail) {
        const a = again.find((x) => x.type !== 'print' && x.change !== 'none');
        assert.match(a && a.type !== 'print' ? a.detail : '', row.detail);
      }
    });
  }

  test('a regular file where the handover belongs -> JobError before anything is done', () => {
    const host = baseHost();
    host.paths.set('/var/lib/baton', { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    host.paths.set('/var/lib/baton/handover', { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    host.paths.set('/var/lib/baton/handover/data', { type: 'file', mode: 0o644, uid: 0, gid: 0 });
    assert.throws(
      () => planInstall('source', SOURCE, options(host)),
      (e: unknown) => e instanceof JobError && /is a file, not a directory/.test(e.message),
    );
  });

  test('an existing user whose home is / -> JobError naming usermod', () => {
    const host = baseHost();
    host.users.set('dataBackupSource', { uid: 5, gid: 5, home: '/', locked: false });
    assert.throws(() => planInstall('source', SOURCE, options(host)), /usermod -d \/home\/dataBackupSource/);
  });
});

describe('planInstall refuses options that do not fit (exit 2, nothing done)', () => {
  const rows: Array<{ name: string; kind: 'source' | 'sink'; over: Partial<InstallOptions>; error: RegExp }> =
    [
      {
        name: '--ca-key with --sink-key-data',
        kind: 'source',
        over: { caKey: CA_KEY, sinkKeys: { data: SINK_KEY } },
        error: /either --ca-key/,
      },
      {
        name: '--from with a quote',
        kind: 'source',
        over: { from: '1.2.3.4",command="sh' },
        error: /--from/,
      },
      {
        name: 'relative --baton',
        kind: 'source',
        over: { baton: ['baton'] },
        error: /--baton must be an absolute path/,
      },
      {
        name: 'calendar with a newline',
        kind: 'source',
        over: { onCalendar: 'daily\nExecStart=/bin/sh' },
        error: /--on-calendar/,
      },
      {
        name: '--cron with a weekly calendar',
        kind: 'source',
        over: { scheduler: 'cron', onCalendar: 'Mon 02:00' },
        error: /no cron equivalent/,
      },
      {
        name: '--on-calendar-logs on the source',
        kind: 'source',
        over: { onCalendarLogs: '05:00' },
        error: /is for `baton install sink`/,
      },
      {
        name: '--from on the sink',
        kind: 'sink',
        over: { from: '10.0.0.1' },
        error: /--from is for `baton install source`/,
      },
      { name: '--ca-key on the sink', kind: 'sink', over: { caKey: CA_KEY }, error: /--ca-key is for/ },
    ];
  for (const row of rows) {
    test(`${row.name} -> ConfigError`, () => {
      assert.throws(
        () => planInstall(row.kind, row.kind === 'source' ? SOURCE : SINK, options(baseHost(), row.over)),
        (e: unknown) =>
          e instanceof ConfigError && e.exitCode === ExitCode.usage && row.error.test(e.message),
      );
    });
  }

  test('data and logs with the same user -> ConfigError', () => {
    const same = {
      ...SOURCE,
      streams: { ...SOURCE.streams, logs: { ...SOURCE.streams.logs!, user: 'dataBackupSource' } },
    };
    assert.throws(
      () => planInstall('source', same, options(baseHost())),
      (e: unknown) => e instanceof BatonError && /must differ/.test(e.message),
    );
  });
});

describe('planInstall sink', () => {
  const sinkOpts = (host: HostState, over: Partial<InstallOptions> = {}) =>
    options(host, { configFile: SINK_FILE, ...over });

  test('empty host -> state 0700, store 0750 root, key dir 0700, a key pair per source/stream, pull units', () => {
    const actions = planInstall('sink', SINK, sinkOpts(baseHost()));
    assert.deepEqual(changed(actions), [
      'create dir /var/lib/baton',
      'create dir /var/lib/baton/sink-state',
      'create dir /srv/backups',
      'create dir /srv/backups/baton',
      'create dir /etc/baton/keys',
      'create file /srv/backups/baton/.baton-store',
      'create keypair /etc/baton/keys/shop-data',
      'create keypair /etc/baton/keys/shop-logs',
      'create file /etc/systemd/system/baton-sink-pull-data.service',
      'create file /etc/systemd/system/baton-sink-pull-data.timer',
      'create file /etc/systemd/system/baton-sink-pull-logs.service',
      'create file /etc/systemd/system/baton-sink-pull-logs.timer',
      'create file /etc/systemd/system/baton-sink-verify.service',
      'create file /etc/systemd/system/baton-sink-verify.timer',
      'create file /etc/systemd/system/baton-sink-failure@.service',
    ]);
    const d = dirs(actions);
    assert.equal(d.get('/srv/backups/baton')?.mode, 0o750);
    assert.equal(d.get('/var/lib/baton/sink-state')?.mode, 0o700);
    assert.equal(d.get('/etc/baton/keys')?.mode, 0o700);
    const f = files(actions);
    assert.match(
      f.get('/etc/systemd/system/baton-sink-pull-data.timer')?.content ?? '',
      /^OnCalendar=\*-\*-\* 04:00:00$/m,
    );
    assert.match(
      f.get('/etc/systemd/system/baton-sink-pull-logs.timer')?.content ?? '',
      /^OnCalendar=\*-\*-\* 04:30:00$/m,
    );
    assert.match(
      f.get('/etc/systemd/system/baton-sink-pull-logs.service')?.content ?? '',
      /^ExecStart=\/usr\/bin\/baton sink pull logs --config \/etc\/baton\/sink\.yaml$/m,
    );
    // background priority for the pulls (issue 15), never for the source backup (app down meanwhile)
    for (const stream of ['data', 'logs']) {
      const service = f.get(`/etc/systemd/system/baton-sink-pull-${stream}.service`)?.content ?? '';
      assert.match(service, /^Nice=10$/m);
      assert.match(service, /^IOSchedulingClass=idle$/m);
    }
  });

  test('store marker made by hand (empty, 0600, not root) -> left alone; a directory there -> JobError', () => {
    const host = applyToHost(baseHost(), planInstall('sink', SINK, sinkOpts(baseHost())));
    const paths = host.paths as Map<string, ObservedPath>;
    paths.set('/srv/backups/baton/.baton-store', {
      type: 'file',
      mode: 0o600,
      uid: 1000,
      gid: 1000,
      content: '',
    });
    assert.deepEqual(changed(planInstall('sink', SINK, sinkOpts(host))), []);
    paths.set('/srv/backups/baton/.baton-store', { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    assert.throws(
      () => planInstall('sink', SINK, sinkOpts(host)),
      (e: unknown) =>
        e instanceof BatonError && /\.baton-store \(sink store marker.*not a regular file/.test(e.message),
    );
  });

  test('no known_hosts entry -> ssh-keyscan with the port, and compare the fingerprint on the source', () => {
    const text = notes(planInstall('sink', SINK, sinkOpts(baseHost()))).join('\n');
    assert.match(text, /ssh-keyscan -p 2222 -t ed25519 shop\.example\.com/);
    assert.match(text, /ssh-keygen -lf .*COMPARE/);
    assert.match(text, />> \/etc\/baton\/known_hosts/);
  });

  test('known_hosts pins [host]:port -> says so instead', () => {
    const host = baseHost();
    host.paths.set('/etc/baton/known_hosts', {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      content: `[shop.example.com]:2222 ${CA_KEY}\n`,
    });
    const text = notes(planInstall('sink', SINK, sinkOpts(host))).join('\n');
    assert.match(text, /pins a host key for shop\.example\.com:2222/);
    assert.doesNotMatch(text, /ssh-keyscan/);
  });

  test('existing key pair -> left alone, its public key and authorized_keys line printed', () => {
    const host = applyToHost(baseHost(), planInstall('sink', SINK, sinkOpts(baseHost())));
    const actions = planInstall('sink', SINK, sinkOpts(host));
    const key = actions.find((a) => a.type === 'keypair');
    assert.equal(key?.type === 'keypair' ? key.change : '', 'none');
    const text = notes(actions).join('\n');
    assert.ok(text.includes(`public key: ${SINK_KEY}`));
    assert.ok(
      text.includes(`restrict,command="baton gate data --config /etc/baton/source.yaml" ${SINK_KEY}`),
    );
    assert.match(text, /baton install source --sink-key-data FILE/);
  });

  test('private key with mode 0644 -> update (chmod 0600)', () => {
    const host = applyToHost(baseHost(), planInstall('sink', SINK, sinkOpts(baseHost())));
    (host.paths as Map<string, ObservedPath>).set('/etc/baton/keys/shop-logs', {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
    });
    assert.deepEqual(changed(planInstall('sink', SINK, sinkOpts(host))), [
      'update keypair /etc/baton/keys/shop-logs',
    ]);
  });

  test('a public key without its private key -> JobError', () => {
    const host = baseHost();
    host.paths.set('/etc/baton/keys/shop-data.pub', {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      content: SINK_KEY,
    });
    assert.throws(() => planInstall('sink', SINK, sinkOpts(host)), /exists without its private key/);
  });

  test('only data streams -> only the data units; --cron -> one cron file with 04:00', () => {
    const f = files(planInstall('sink', SINK_DATA_ONLY, sinkOpts(baseHost())));
    assert.deepEqual(
      [...f.keys()],
      [
        '/srv/backups/baton/.baton-store',
        '/etc/systemd/system/baton-sink-pull-data.service',
        '/etc/systemd/system/baton-sink-pull-data.timer',
        '/etc/systemd/system/baton-sink-verify.service',
        '/etc/systemd/system/baton-sink-verify.timer',
        '/etc/systemd/system/baton-sink-failure@.service',
      ],
    );
    const cron = files(
      planInstall(
        'sink',
        SINK,
        sinkOpts(baseHost(), { scheduler: 'cron', onCalendarLogs: '*-*-* 05:45:00' }),
      ),
    );
    const text = cron.get('/etc/cron.d/baton-sink')?.content ?? '';
    assert.match(
      text,
      /^0 4 \* \* \* root \/usr\/bin\/baton sink pull data --config \/etc\/baton\/sink\.yaml$/m,
    );
    assert.match(
      text,
      /^45 5 \* \* \* root \/usr\/bin\/baton sink pull logs --config \/etc\/baton\/sink\.yaml$/m,
    );
  });
});

describe('authorized_keys, quoting, schedules, public keys', () => {
  test('authorizedKeyLine escapes a double quote in the command', () => {
    const line = authorizedKeyLine({
      baton: ['/usr/bin/baton'],
      stream: 'data',
      user: 'u',
      configFile: '/etc/ba"ton.yaml',
      key: SINK_KEY,
      certAuthority: false,
    });
    assert.equal(
      line,
      `restrict,command="/usr/bin/baton gate data --config '/etc/ba\\"ton.yaml'" ${SINK_KEY}`,
    );
  });

  const quoting: Array<[string, string, string, string]> = [
    // arg, shell, systemd, cron
    ['/usr/bin/baton', '/usr/bin/baton', '/usr/bin/baton', '/usr/bin/baton'],
    ['/a b', "'/a b'", '"/a b"', "'/a b'"],
    ['/100%', '/100%', '/100%%', '/100\\%'],
    ['/$HOME', "'/$HOME'", '"/$$HOME"', "'/$HOME'"],
    ["/it's", `'/it'\\''s'`, `"/it's"`, `'/it'\\''s'`],
  ];
  for (const [arg, shell, systemd, cron] of quoting) {
    test(`quoting ${JSON.stringify(arg)}`, () => {
      assert.equal(shellQuote(arg), shell);
      assert.equal(systemdQuote(arg), systemd);
      assert.equal(cronCommand([arg]), cron);
    });
  }

  const calendars: Array<[string, string | undefined]> = [
    ['02:15', '15 2 * * *'],
    ['*-*-* 04:30:00', '30 4 * * *'],
    ['daily', '0 0 * * *'],
    ['hourly', '0 * * * *'],
    ['Mon 02:00', undefined],
    ['*-*-* 02:15:30', undefined],
    ['25:00', undefined],
  ];
  for (const [spec, fields] of calendars) {
    test(`cron schedule of ${JSON.stringify(spec)} -> ${fields ?? 'none'}`, () => {
      const c = cronScheduleOf(spec);
      assert.deepEqual(c.ok ? c.fields : undefined, fields);
    });
  }

  test('calendar expressions: plain ones pass, injection does not', () => {
    assert.equal(checkCalendar('Mon..Fri *-*-* 02:15:00'), undefined);
    assert.equal(checkCalendar('daily'), undefined);
    assert.notEqual(checkCalendar(''), undefined);
    assert.notEqual(checkCalendar('daily\n[Service]'), undefined);
    assert.notEqual(checkCalendar('daily; rm'), undefined);
  });

  const keys: Array<[string, string, string | RegExp]> = [
    ['a plain ed25519 key', `${SINK_KEY}\n`, SINK_KEY],
    ['comment lines and blank lines around it', `# sink\n\n${CA_KEY}\n\n`, CA_KEY],
    [
      'a key without comment',
      SINK_KEY.split(' ').slice(0, 2).join(' '),
      SINK_KEY.split(' ').slice(0, 2).join(' '),
    ],
    ['an empty file', '\n', /no public key/],
    ['two keys', `${SINK_KEY}\n${CA_KEY}\n`, /2 lines/],
    ['options in front', `restrict ${SINK_KEY}`, /not a public key type/],
    [
      'a certificate',
      'ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29 x',
      /certificate/,
    ],
    ['a cut key', SINK_KEY.replace('AAAAC3NzaC1lZDI1NTE5', 'AAAAC3NzaC1lZDI1NTE4'), /does not encode/],
    [
      'a private key',
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n',
      /3 lines/,
    ],
  ];
  for (const [name, text, expected] of keys) {
    test(`parsePublicKey: ${name}`, () => {
      const r = parsePublicKey(text);
      if (typeof expected === 'string')
        assert.deepEqual(r, { ok: true, line: expected, type: 'ssh-ed25519' });
      else assert.match(r.ok ? '' : r.error, expected);
    });
  }
});

describe('weekly deep verify and OnFailure= hooks (issue 15)', () => {
  const plans = {
    source: () => files(planInstall('source', SOURCE, options(baseHost()))),
    sink: () => files(planInstall('sink', SINK, options(baseHost(), { configFile: SINK_FILE }))),
  };
  const configOf = { source: SOURCE_FILE, sink: SINK_FILE };
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

  for (const kind of ['source', 'sink'] as const) {
    test(`${kind}: weekly verify --all --deep of its stores, Nice=19, idle I/O, persistent, randomized`, () => {
      const f = plans[kind]();
      const service = f.get(`/etc/systemd/system/baton-${kind}-verify.service`)?.content ?? '';
      const timer = f.get(`/etc/systemd/system/baton-${kind}-verify.timer`)?.content ?? '';
      assert.match(
        service,
        new RegExp(`^ExecStart=/usr/bin/baton verify --all --deep --config ${esc(configOf[kind])}$`, 'm'),
      );
      assert.match(service, /^Type=oneshot$/m);
      assert.match(service, /^Nice=19$/m);
      assert.match(service, /^IOSchedulingClass=idle$/m);
      assert.match(timer, /^OnCalendar=Sun \*-\*-\* 06:00:00$/m);
      assert.match(timer, /^Persistent=true$/m);
      assert.match(timer, /^RandomizedDelaySec=1h$/m);
      assert.match(timer, /^WantedBy=timers\.target$/m);
    });

    test(`${kind}: every service has OnFailure= its failure template; the template runs notify-failure %i`, () => {
      const f = plans[kind]();
      const template = `/etc/systemd/system/baton-${kind}-failure@.service`;
      const services = [...f.keys()].filter((p) => p.endsWith('.service') && p !== template);
      assert.ok(services.length >= 2, services.join(' '));
      for (const p of services) {
        const content = f.get(p)?.content ?? '';
        assert.match(content, new RegExp(`^OnFailure=baton-${kind}-failure@%n\\.service$`, 'm'), p);
        // in [Unit], before [Service]
        assert.ok(content.indexOf('OnFailure=') < content.indexOf('[Service]'), p);
      }
      const handler = f.get(template)?.content ?? '';
      assert.match(
        handler,
        new RegExp(`^ExecStart=/usr/bin/baton notify-failure %i --config ${esc(configOf[kind])}$`, 'm'),
      );
      assert.doesNotMatch(handler, /OnFailure=/, 'the handler does not trigger itself');
      assert.doesNotMatch(handler, /\[Install\]/, 'started by OnFailure= only');
    });

    test(`${kind} --cron: a weekly nice/ionice verify --all --deep line, no units`, () => {
      const f = files(
        planInstall(
          kind,
          kind === 'source' ? SOURCE : SINK,
          options(baseHost(), { scheduler: 'cron', configFile: configOf[kind] }),
        ),
      );
      assert.deepEqual(
        [...f.keys()].filter((p) => p.startsWith('/etc/systemd')),
        [],
      );
      const cron = f.get(`/etc/cron.d/baton-${kind}`)?.content ?? '';
      assert.match(
        cron,
        new RegExp(
          `^0 6 \\* \\* 0 root nice -n 19 ionice -c 3 /usr/bin/baton verify --all --deep --config ${esc(configOf[kind])}$`,
          'm',
        ),
      );
    });
  }

  for (const kind of ['source', 'sink'] as const) {
    const plan = (over: Parameters<typeof options>[1]) =>
      files(
        planInstall(
          kind,
          kind === 'source' ? SOURCE : SINK,
          options(baseHost(), { configFile: configOf[kind], ...over }),
        ),
      );
    test(`${kind} --verify-calendar 'Sat 13:00' -> the verify timer's OnCalendar=, and the cron line's fields`, () => {
      const timer = plan({ verifyCalendar: 'Sat 13:00' }).get(
        `/etc/systemd/system/baton-${kind}-verify.timer`,
      );
      assert.match(timer?.content ?? '', /^OnCalendar=Sat 13:00$/m);
      const cron = plan({ verifyCalendar: 'Sat 13:00', scheduler: 'cron' }).get(`/etc/cron.d/baton-${kind}`);
      assert.match(cron?.content ?? '', /^0 13 \* \* 6 root nice -n 19 ionice -c 3 .* verify --all --deep /m);
      // the other timers keep their own calendars
      const backupOrPull = kind === 'source' ? 'baton-source-backup.timer' : 'baton-sink-pull-data.timer';
      assert.doesNotMatch(
        plan({ verifyCalendar: 'Sat 13:00' }).get(`/etc/systemd/system/${backupOrPull}`)?.content ?? '',
        /Sat 13:00/,
      );
    });

    test(`${kind} --verify-calendar: an injection or a cron-less spec with --cron -> one clear error`, () => {
      assert.throws(
        () => plan({ verifyCalendar: 'Sun 06:00\n[Service]' }),
        // one line: the newline is shown escaped
        (e: Error) =>
          /^--verify-calendar: "Sun 06:00\\n\[Service\]" is not an OnCalendar= expression/.test(e.message) &&
          !e.message.includes('\n'),
      );
      assert.throws(() => plan({ verifyCalendar: '' }), /--verify-calendar: empty calendar expression/);
      assert.throws(
        () => plan({ verifyCalendar: 'Mon..Fri 06:00', scheduler: 'cron' }),
        /--verify-calendar: .*no cron equivalent/,
      );
    });
  }

  const weekly: Array<[string, string | undefined]> = [
    ['Sun *-*-* 06:00:00', '0 6 * * 0'],
    ['Sun 06:00', '0 6 * * 0'],
    ['Sat 13:05', '5 13 * * 6'],
    ['weekly', '0 0 * * 1'],
    ['03:30', '30 3 * * *'],
    ['Mon..Fri 06:00', undefined],
    ['Sun hourly', undefined],
    ['Sun 24:00', undefined],
    ['sunday 06:00', undefined],
  ];
  for (const [spec, fields] of weekly) {
    test(`weekly cron schedule of ${JSON.stringify(spec)} -> ${fields ?? 'none'}`, () => {
      const c = cronWeeklyScheduleOf(spec);
      assert.deepEqual(c.ok ? c.fields : undefined, fields);
    });
  }

  test('a baton path with % -> doubled in the template, while %i stays the failed unit', () => {
    const f = files(
      planInstall('sink', SINK, options(baseHost(), { baton: ['/opt/b%n/baton'], configFile: SINK_FILE })),
    );
    assert.match(
      f.get('/etc/systemd/system/baton-sink-failure@.service')?.content ?? '',
      /^ExecStart=\/opt\/b%%n\/baton notify-failure %i --config \/etc\/baton\/sink\.yaml$/m,
    );
  });

  test('the packaged units: both kinds side by side, no two with the same name', () => {
    const names = packagedUnits(['/usr/bin/baton']).map((u) => u.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of [
      'baton-source-verify.timer',
      'baton-sink-verify.timer',
      'baton-source-failure@.service',
      'baton-sink-failure@.service',
    ])
      assert.ok(names.includes(n), n);
  });

  test('isUnitName: what %n gives passes; options, paths, spaces and control characters do not', () => {
    for (const ok of ['baton-sink-pull-data.service', 'baton-source-failure@x.service', 'a\\x2db.timer'])
      assert.equal(isUnitName(ok), true, ok);
    for (const bad of [
      '',
      '-u.service',
      '--all',
      'a b.service',
      'a/b.service',
      'x.service\n',
      'noext',
      `${'a'.repeat(300)}.service`,
    ])
      assert.equal(isUnitName(bad), false, JSON.stringify(bad));
  });
});
