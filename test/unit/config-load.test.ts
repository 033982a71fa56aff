import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closestName, formatKeyPath, type ConfigProblem } from '../../src/config/explain.js';
import {
  checkConfigFile,
  checkConfigText,
  InvalidConfigError,
  inferConfigKind,
  loadConfig,
  loadSinkConfig,
  loadSourceConfig,
  parseAnyConfigText,
  parseConfigText,
} from '../../src/config/load.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

const MINIMAL_SOURCE = `name: shop-prod
app:
  stop: systemctl stop shop
  start: systemctl start shop
streams:
  data:
    paths: [/srv/shop/data]
    handover: /var/lib/baton/handover/data
    user: dataBackupSource
    store: /var/backups/baton/source-store
`;

const MINIMAL_SINK = `store: /srv/backups/baton
sources:
  - name: shop-prod
    host: shop.example.com
    knownHosts: /etc/baton/known_hosts
    streams:
      data: { user: dataBackupSource, identity: /etc/baton/keys/shop-data, generations: 14 }
`;

const FULL_SOURCE = `name: shop-prod
stateDir: /var/lib/baton/state/
app:
  stop: [systemctl, stop, shop]
  start: systemctl start shop
  healthCheck: curl -fsS http://127.0.0.1:8080/health
  stopTimeout: 90s
  startTimeout: 15m
  healthInterval: 2s
streams:
  data:
    paths: [/srv/shop/data, /etc/shop]
    exclude: ["*.tmp", "cache/"]
    handover: /var/lib/baton/handover/data
    user: dataBackupSource
    store: /var/backups/baton/source-store
    generations: 5
  logs:
    paths: [/var/log/shop]
    handover: /var/lib/baton/handover/logs
    user: logBackupSource
limits:
  maxPendingGenerations: 4
alerts:
  transportOverdue: 26h
  mail: { to: [ops@example.com], from: baton@shop-prod, smtp: "smtp://127.0.0.1:25" }
  ping: { url: https://hc.example/uuid }
`;

const FULL_SINK = `store: /srv/backups/baton
stateDir: /var/lib/baton/sink-state
verify: false
parallel: 4
timeout: 14d
limits: { maxFiles: 1000, maxBytes: 1000000 }
sources:
  - name: shop-prod
    host: shop.example.com
    port: 2222
    knownHosts: /etc/baton/known_hosts
    streams:
      data: { user: dataBackupSource, identity: /etc/baton/keys/shop-data, generations: 14 }
      logs: { user: logBackupSource, identity: /etc/baton/keys/shop-logs, generations: 30 }
alerts:
  staleAfter: 30h
  mail: { to: [ops@example.com], from: baton@sink, sendmail: /usr/sbin/sendmail }
recoveryTiers:
  - { name: HostEurope daily snapshot, keepDays: 14, scope: whole source filesystem }
`;

/** The problems of text that must fail, or a test failure naming the kind it parsed as. */
function problemsOf(text: string, kind?: 'source' | 'sink'): ConfigProblem[] {
  const r = checkConfigText(text, kind);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.problems;
}

/** The error parseConfigText throws for text that must fail. */
function errorOf(text: string, kind: 'source' | 'sink'): InvalidConfigError {
  try {
    parseConfigText(text, 'cfg.yaml', kind);
  } catch (err) {
    assert.ok(err instanceof InvalidConfigError, `expected InvalidConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected parseConfigText to throw');
}

test('minimal source config -> parses with defaults applied', () => {
  const c = parseConfigText(MINIMAL_SOURCE, 'cfg.yaml', 'source');
  assert.equal(c.name, 'shop-prod');
  assert.equal(c.stateDir, '/var/lib/baton/state');
  assert.equal(c.app.stopTimeout, 120_000);
  assert.equal(c.app.startTimeout, 120_000);
  assert.equal(c.app.healthInterval, 1000);
  assert.deepEqual(c.streams.data.exclude, []);
  assert.equal(c.streams.data.generations, 3);
  assert.equal(c.streams.logs, undefined);
  assert.deepEqual(c.limits, { maxPendingGenerations: 10, minFreeBytes: 100 * 1024 * 1024 });
  assert.deepEqual(c.alerts, {});
});

test('minimal sink config -> parses with defaults applied', () => {
  const c = parseConfigText(MINIMAL_SINK, 'cfg.yaml', 'sink');
  assert.equal(c.stateDir, '/var/lib/baton/sink-state');
  assert.equal(c.verify, true);
  assert.equal(c.parallel, 2);
  assert.equal(c.timeout, 600_000);
  assert.deepEqual(c.limits, {
    maxFiles: 10_000_000,
    maxBytes: 2 ** 44,
    maxPullDuration: 6 * 3_600_000,
    minThroughput: { bytes: 2 ** 20, window: 30 * 60_000 },
    futureSkew: 10 * 60_000,
    maxQuarantined: 5,
    maxQuarantineBytes: 16 * 2 ** 30,
  });
  assert.equal(c.sources[0]?.port, 22);
  assert.deepEqual(c.recoveryTiers, []);
});

test('full source config -> every key kept, durations in ms, trailing slash dropped', () => {
  const c = parseConfigText(FULL_SOURCE, 'cfg.yaml', 'source');
  assert.equal(c.stateDir, '/var/lib/baton/state');
  assert.deepEqual(c.app.stop, ['systemctl', 'stop', 'shop']);
  assert.equal(c.app.stopTimeout, 90_000);
  assert.equal(c.app.startTimeout, 15 * 60_000);
  assert.equal(c.app.healthInterval, 2000);
  assert.deepEqual(c.streams.data.exclude, ['*.tmp', 'cache/']);
  assert.equal(c.streams.data.generations, 5);
  assert.equal(c.streams.logs?.user, 'logBackupSource');
  assert.deepEqual(c.limits, { maxPendingGenerations: 4, minFreeBytes: 100 * 1024 * 1024 });
  assert.equal(c.alerts.transportOverdue, 26 * 3_600_000);
  assert.equal(c.alerts.mail?.smtp, 'smtp://127.0.0.1:25');
  assert.equal(c.alerts.ping?.timeout, 10_000);
});

test('full sink config -> every key kept', () => {
  const c = parseConfigText(FULL_SINK, 'cfg.yaml', 'sink');
  assert.equal(c.verify, false);
  assert.equal(c.parallel, 4);
  assert.equal(c.timeout, 14 * 86_400_000);
  assert.deepEqual(c.limits, {
    maxFiles: 1000,
    maxBytes: 1_000_000,
    maxPullDuration: 6 * 3_600_000,
    minThroughput: { bytes: 2 ** 20, window: 30 * 60_000 },
    futureSkew: 10 * 60_000,
    maxQuarantined: 5,
    maxQuarantineBytes: 16 * 2 ** 30,
  });
  assert.equal(c.sources[0]?.port, 2222);
  assert.equal(c.sources[0]?.streams.logs?.generations, 30);
  assert.equal(c.alerts.staleAfter, 30 * 3_600_000);
  assert.equal(c.alerts.mail?.sendmail, '/usr/sbin/sendmail');
  assert.equal(c.recoveryTiers[0]?.keepDays, 14);
});

for (const [text, ms] of [
  ['90s', 90_000],
  ['15m', 900_000],
  ['26h', 93_600_000],
  ['14d', 1_209_600_000],
] as const) {
  test(`duration ${text} -> ${ms} ms`, () => {
    const c = parseConfigText(
      MINIMAL_SOURCE.replace('app:\n', `app:\n  stopTimeout: ${text}\n`),
      'cfg.yaml',
      'source',
    );
    assert.equal(c.app.stopTimeout, ms);
  });
}

test('unknown key -> error at the line:col of that key, with a suggestion', () => {
  const text = MINIMAL_SOURCE.replace(
    '  start: systemctl start shop\n',
    '  start: systemctl start shop\n  stopTimout: 2m\n',
  );
  assert.deepEqual(problemsOf(text, 'source'), [
    {
      line: 5,
      col: 3,
      path: 'app.stopTimout',
      message: 'unknown key "stopTimout" (did you mean "stopTimeout"?)',
    },
  ]);
});

test('unknown top-level key -> error at column 1 listing nothing it cannot know', () => {
  const [p] = problemsOf(`${MINIMAL_SOURCE}bogus: 1\n`, 'source');
  assert.equal(p?.line, 11);
  assert.equal(p?.col, 1);
  assert.equal(p?.path, 'bogus');
  assert.match(p?.message ?? '', /^unknown key "bogus"/);
});

test('duplicate key -> YAML error at the second occurrence', () => {
  const text = MINIMAL_SOURCE.replace('  start: systemctl start shop\n', '  start: a\n  start: b\n');
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 5, col: 3, path: 'app.start', message: 'duplicate key "start" (keys must be unique)' },
  ]);
});

test('wrong duration -> error at the value naming the accepted forms', () => {
  const text = MINIMAL_SOURCE.replace('app:\n', 'app:\n  stopTimeout: 2 minutes\n');
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 3, col: 16, path: 'app.stopTimeout', message: 'expected a duration like 90s, 15m, 26h or 14d' },
  ]);
});

test('relative path in a list -> error at that item, path with index', () => {
  const text = MINIMAL_SOURCE.replace('paths: [/srv/shop/data]', 'paths: [/srv/shop/data, srv/other]');
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 7, col: 29, path: 'streams.data.paths[1]', message: 'expected an absolute path without ".."' },
  ]);
});

test('path with .. -> rejected', () => {
  const text = MINIMAL_SOURCE.replace('store: /var/backups/baton/source-store', 'store: /var/../etc');
  assert.equal(problemsOf(text, 'source')[0]?.path, 'streams.data.store');
});

test('missing required key -> error at the mapping it is missing from', () => {
  const text = MINIMAL_SOURCE.replace('  start: systemctl start shop\n', '');
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 2, col: 1, path: 'app.start', message: 'missing required key' },
  ]);
});

test('missing required key in a list item -> error at that item', () => {
  const text = MINIMAL_SINK.replace('    host: shop.example.com\n', '');
  assert.deepEqual(problemsOf(text, 'sink'), [
    { line: 3, col: 5, path: 'sources[0].host', message: 'missing required key' },
  ]);
});

test('empty value where a mapping is needed -> error names the empty value', () => {
  const [p] = problemsOf('name: a\napp:\nstreams:\n', 'source');
  assert.deepEqual(p, { line: 2, col: 1, path: 'app', message: 'expected a mapping, got an empty value' });
});

test('wrong scalar type -> expected vs got', () => {
  const text = MINIMAL_SINK.replace('generations: 14', 'generations: many');
  assert.deepEqual(problemsOf(text, 'sink'), [
    {
      line: 7,
      col: 89,
      path: 'sources[0].streams.data.generations',
      message: 'expected a number, got "many"',
    },
  ]);
});

test('argv list with a non-string -> error at that list item', () => {
  const text = MINIMAL_SOURCE.replace('stop: systemctl stop shop', 'stop: [systemctl, 3]');
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 3, col: 21, path: 'app.stop[1]', message: 'expected a string, got 3' },
  ]);
});

test('mail with both smtp and sendmail -> one error at the mail mapping', () => {
  const text = `${MINIMAL_SOURCE}alerts:\n  mail: { to: [a@b.c], from: x, smtp: "smtp://h:25", sendmail: /usr/sbin/sendmail }\n`;
  assert.deepEqual(problemsOf(text, 'source'), [
    { line: 12, col: 9, path: 'alerts.mail', message: 'set exactly one of smtp and sendmail' },
  ]);
});

test('YAML syntax error -> error with line:col and no schema noise', () => {
  const problems = problemsOf('name: a\napp:\n  stop: [x\n  start: y\n', 'source');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, 4);
  assert.equal(problems[0]?.path, '');
  assert.match(problems[0]?.message ?? '', /^invalid YAML: /);
});

test('unresolved alias -> YAML error at the alias', () => {
  assert.deepEqual(problemsOf('name: *nope\n', 'source'), [
    {
      line: 1,
      col: 7,
      path: '',
      message: 'invalid YAML: Unresolved alias (the anchor must be set before the alias): nope',
    },
  ]);
});

test('empty file -> error', () => {
  assert.deepEqual(problemsOf('', 'source'), [
    { line: 1, col: 1, path: '', message: 'the file is empty: expected a source config' },
  ]);
  assert.equal(problemsOf('# only a comment\n').length, 1);
});

test('top level not a mapping -> error', () => {
  assert.deepEqual(problemsOf('- name: a\n', 'sink'), [
    { line: 1, col: 1, path: '', message: 'expected a mapping of config keys at the top level, got a list' },
  ]);
  assert.match(problemsOf('just text\n')[0]?.message ?? '', /got "just text"/);
});

test('several problems -> all reported, sorted by position, first line a standalone summary', () => {
  const text = MINIMAL_SOURCE.replace('app:\n', 'app:\n  stopTimeout: soon\n  bogus: 1\n').replace(
    'paths: [/srv/shop/data]',
    'paths: [relative]',
  );
  const err = errorOf(text, 'source');
  assert.equal(err.exitCode, ExitCode.usage);
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(
    err.problems.map((p) => `${p.line}:${p.col} ${p.path}`),
    ['3:16 app.stopTimeout', '4:3 app.bogus', '9:13 streams.data.paths[0]'],
  );
  const lines = err.message.split('\n');
  assert.equal(
    lines[0],
    'cfg.yaml:3:16: app.stopTimeout: expected a duration like 90s, 15m, 26h or 14d (+2 more problems)',
  );
  assert.match(lines[1] ?? '', /^cfg\.yaml:4:3: app\.bogus: unknown key "bogus"/);
  assert.equal(lines[2], 'cfg.yaml:9:13: streams.data.paths[0]: expected an absolute path without ".."');
});

test('one problem -> message is exactly one line', () => {
  const err = errorOf(MINIMAL_SOURCE.replace('name: shop-prod', 'name: "shop prod"'), 'source');
  assert.equal(err.message, 'cfg.yaml:1:7: name: letters, digits, ".", "_" and "-", at most 63');
});

for (const [keys, kind] of [
  [['app', 'streams', 'name'], 'source'],
  [['streams'], 'source'],
  [['store', 'sources'], 'sink'],
  [['sources'], 'sink'],
  [['app', 'sources'], 'ambiguous'],
  [['name'], undefined],
  [[], undefined],
] as const) {
  test(`top-level keys [${keys.join(', ')}] -> kind ${String(kind)}`, () => {
    assert.equal(inferConfigKind(keys), kind);
  });
}

test('kind omitted -> inferred from the keys', () => {
  assert.equal(parseAnyConfigText(MINIMAL_SOURCE, 'cfg.yaml').kind, 'source');
  assert.equal(parseAnyConfigText(MINIMAL_SINK, 'cfg.yaml').kind, 'sink');
});

test('kind omitted and no telling keys -> error', () => {
  const [p] = problemsOf('name: a\n');
  assert.match(p?.message ?? '', /^not a baton config/);
});

test('kind given but the file is the other kind -> one clear error', () => {
  assert.deepEqual(problemsOf(MINIMAL_SINK, 'source'), [
    {
      line: 1,
      col: 1,
      path: '',
      message: 'this is a sink config (it has store:/sources:), expected a source config',
    },
  ]);
});

for (const [path, text] of [
  [['streams', 'data', 'paths', 0], 'streams.data.paths[0]'],
  [['sources', 1, 'streams'], 'sources[1].streams'],
  [['odd key', 'x'], '["odd key"].x'],
  [[], ''],
] as const) {
  test(`key path ${JSON.stringify(path)} -> ${text || "''"}`, () => {
    assert.equal(formatKeyPath(path), text);
  });
}

for (const [word, names, guess] of [
  ['stopTimout', ['stop', 'stopTimeout'], 'stopTimeout'],
  ['Store', ['store', 'sources'], 'store'],
  ['bogus', ['store', 'sources'], undefined],
  ['ab', ['cd'], undefined],
] as const) {
  test(`typo ${word} -> suggests ${String(guess)}`, () => {
    assert.equal(closestName(word, names), guess);
  });
}

test('loadConfig / loadSourceConfig / loadSinkConfig -> read, infer and type the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
  try {
    const source = join(dir, 'source.yaml');
    const sink = join(dir, 'sink.yaml');
    writeFileSync(source, MINIMAL_SOURCE);
    writeFileSync(sink, MINIMAL_SINK);
    assert.equal((await loadConfig(source)).kind, 'source');
    assert.equal((await loadConfig(sink)).kind, 'sink');
    assert.equal((await loadSourceConfig(source)).name, 'shop-prod');
    assert.equal((await loadSinkConfig(sink)).store, '/srv/backups/baton');
    await assert.rejects(loadSinkConfig(source), (err: unknown) => {
      assert.ok(err instanceof InvalidConfigError);
      assert.match(err.message, new RegExp(`^${source}:1:1: this is a source config`));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('missing file -> ConfigError "cannot read FILE: ENOENT ..." with exit code 2', async () => {
  await assert.rejects(loadConfig('/nonexistent/baton.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.exitCode, ExitCode.usage);
    assert.equal(err.message, 'cannot read /nonexistent/baton.yaml: ENOENT: no such file or directory');
    return true;
  });
});

test('checkConfigFile on a missing file -> report with null position', async () => {
  assert.deepEqual(await checkConfigFile('/nonexistent/baton.yaml', 'sink'), {
    ok: false,
    kind: 'sink',
    file: '/nonexistent/baton.yaml',
    errors: [
      {
        line: null,
        col: null,
        path: null,
        message: 'cannot read /nonexistent/baton.yaml: ENOENT: no such file or directory',
      },
    ],
  });
});
