import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The built CLI (npm run build: tsc + scripts/copy-assets.mjs). Never skip: fail loudly when it is missing.
const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../dist/config/examples/', import.meta.url));

function baton(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  assert.ok(existsSync(MAIN), `${MAIN} is missing: run npm run build first`);
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'baton-config-cli-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const VALID_SOURCE = `name: shop-prod
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

test('config check on a valid source file -> exit 0 and "ok: FILE is a valid source config"', () => {
  withTmp((dir) => {
    const file = join(dir, 'source.yaml');
    writeFileSync(file, VALID_SOURCE);
    const r = baton('config', 'check', '--config', file);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `ok: ${file} is a valid source config\n`);
  });
});

test('config check on a bad file -> exit 2, stderr names file:line:col of each problem', () => {
  withTmp((dir) => {
    const file = join(dir, 'source.yaml');
    writeFileSync(file, VALID_SOURCE.replace('app:\n', 'app:\n  stopTimeout: soon\n  bogus: 1\n'));
    const r = baton('config', 'check', '--config', file);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`baton: ${file}:3:16: app\\.stopTimeout: expected a duration`));
    assert.ok(r.stderr.includes(`${file}:4:3: app.bogus: unknown key "bogus"`), r.stderr);
    assert.equal(r.stdout, '');
  });
});

test('config check --json on a bad file -> exit 2 and a JSON report on stdout', () => {
  withTmp((dir) => {
    const file = join(dir, 'sink.yaml');
    writeFileSync(file, 'store: /srv/backups\nsources: []\n');
    const r = baton('config', 'check', 'sink', '--config', file, '--json');
    assert.equal(r.status, 2);
    assert.deepEqual(JSON.parse(r.stdout), {
      ok: false,
      kind: 'sink',
      file,
      errors: [{ line: 2, col: 10, path: 'sources', message: 'must list at least one item' }],
    });
  });
});

test('config check --json on a valid file -> exit 0 and ok: true', () => {
  withTmp((dir) => {
    const file = join(dir, 'source.yaml');
    writeFileSync(file, VALID_SOURCE);
    const r = baton('config', 'check', '--json', '--config', file);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, kind: 'source', file, errors: [] });
  });
});

test('config check on a missing file -> exit 2 and "cannot read"', () => {
  const r = baton('config', 'check', 'source', '--config', '/nonexistent/source.yaml');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /baton: cannot read \/nonexistent\/source\.yaml: ENOENT/);
});

test('config check with neither kind nor --config -> exit 2', () => {
  const r = baton('config', 'check');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /name the kind \(source or sink\) or the file/);
});

test('config check with a bad kind -> exit 2', () => {
  assert.equal(baton('config', 'check', 'sauce').status, 2);
});

for (const kind of ['source', 'sink'] as const) {
  test(`config example ${kind} -> a file that config check ${kind} accepts`, () => {
    withTmp((dir) => {
      const r = baton('config', 'example', kind);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, readFileSync(join(EXAMPLES, `${kind}.example.yaml`), 'utf8'));
      const file = join(dir, `${kind}.yaml`);
      writeFileSync(file, r.stdout);
      const check = baton('config', 'check', kind, '--config', file);
      assert.equal(check.status, 0, check.stderr);
      assert.equal(check.stdout, `ok: ${file} is a valid ${kind} config\n`);
    });
  });

  test(`config schema ${kind} -> the committed JSON Schema`, () => {
    const r = baton('config', 'schema', kind);
    assert.equal(r.status, 0, r.stderr);
    const committed = readFileSync(new URL(`../../schema/${kind}.schema.json`, import.meta.url), 'utf8');
    assert.equal(r.stdout, committed);
    assert.equal(typeof JSON.parse(r.stdout), 'object');
  });
}

for (const args of [['config'], ['config', 'check'], ['config', 'schema'], ['config', 'example']]) {
  test(`${args.join(' ')} --help -> has an Examples: section`, () => {
    const r = baton(...args, '--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nExamples:\n {2}\$ baton config /);
  });
}
