// test-lock: dpkg (installs the package system-wide)
/**
 * The packages of `npm run package` (scripts/package.mjs), installed for real on this machine:
 * the .deb with dpkg -i (baton on PATH, its version, its example config, `man baton`, the shipped
 * units through systemd-analyze verify) and removed with dpkg -r / -P, leaving a config in /etc/baton
 * and a store alone; the npm tarball into a temp prefix, a copy that does not point into the checkout.
 * At the end the package is purged: the other tests keep using the checkout's dist/.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, realpath, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { BATON_MAIN, show } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PKG = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const DEB = join(ROOT, 'dist', `baton_${PKG.version}_all.deb`);
const TGZ = join(ROOT, 'dist', `baton-backup-${PKG.version}.tgz`);
const SINK_EXAMPLE = await readFile(join(ROOT, 'src/config/examples/sink.example.yaml'), 'utf8');
// Not /usr/sbin first: the installed baton must be the one found.
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const run = (argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
  runProcess(argv, { env: { ...process.env, PATH, ...env }, timeoutMs: 180_000, captureStdout: true });

async function ok(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(argv, env);
  assert.equal(r.code, 0, `${argv.join(' ')}\n${show(r)}`);
  return r.stdout;
}

const installed = async (): Promise<boolean> =>
  (await run(['dpkg-query', '-W', '-f=${Status}', 'baton'])).stdout.includes('install ok installed');
/**
 * Written before this test installs the package, removed after it purged it: a run that was killed in
 * between (a session's end, a CI timeout) leaves it, and the next run may then purge what it left.
 * A baton package installed without it is an operator's and is never touched.
 */
const LEFTOVER_MARK = '/var/lib/baton-package-test.installing';

/** Every long option `baton ARGS --help` lists. */
async function helpOptions(baton: string, args: readonly string[]): Promise<string[]> {
  const help = await ok([baton, ...args, '--help']);
  return [...new Set(help.match(/(?<![\w-])--[a-z][a-z-]+/g) ?? [])];
}

let tmp: string;
before(async () => {
  assert.equal(process.getuid?.(), 0, 'the package tests install with dpkg: run them as root');
  tmp = await mkdtemp(join(tmpdir(), 'baton-package-'));
  await ok([process.execPath, join(ROOT, 'scripts/package.mjs')]);
});
after(async () => {
  if (existsSync(LEFTOVER_MARK)) {
    if (await installed()) await run(['dpkg', '-P', 'baton']);
    await rm(LEFTOVER_MARK, { force: true });
  }
  await rm(tmp, { recursive: true, force: true });
});

test('the bundle copied alone (main.js and its chunks) reports the real version and prints the example configs', async () => {
  const alone = join(tmp, 'alone');
  await mkdir(alone);
  await cp(BATON_MAIN, join(alone, 'main.js'));
  await cp(join(dirname(BATON_MAIN), 'chunks'), join(alone, 'chunks'), { recursive: true });
  assert.equal((await ok([process.execPath, join(alone, 'main.js'), '--version'])).trim(), PKG.version);
  assert.equal(
    await ok([process.execPath, join(alone, 'main.js'), 'config', 'example', 'sink']),
    SINK_EXAMPLE,
  );
});

describe('the Debian package', { concurrency: false }, () => {
  const config = '/etc/baton/package-test-bzW.yaml';
  const store = '/var/lib/baton-package-test-bzW/store';
  let etcExisted = false;

  before(async () => {
    if (existsSync(LEFTOVER_MARK) && (await installed())) {
      console.log(`# a killed run of this test left the package installed (${LEFTOVER_MARK}): purging it`);
      await ok(['dpkg', '-P', 'baton']);
    }
    assert.equal(await installed(), false, 'a baton package is installed already: dpkg -P baton first');
    etcExisted = existsSync('/etc/baton');
  });
  after(async () => {
    await rm(config, { force: true });
    await rm('/var/lib/baton-package-test-bzW', { recursive: true, force: true });
    if (!etcExisted) await rmdir('/etc/baton').catch(() => undefined);
  });

  test('dpkg -i installs baton on PATH as a real copy under /usr/lib/baton', async () => {
    await writeFile(LEFTOVER_MARK, `${process.pid}\n`);
    // --path-include: a Debian image may exclude /usr/share/{man,doc} (docker's slim images)
    await ok([
      'dpkg',
      '--path-include=/usr/share/man/man1/baton.1.gz',
      '--path-include=/usr/share/doc/baton/*',
      '-i',
      DEB,
    ]);
    assert.equal(await installed(), true);
    assert.equal(await realpath('/usr/bin/baton'), '/usr/lib/baton/cli/main.js');
    assert.equal((await ok(['sh', '-c', 'command -v baton'])).trim(), '/usr/bin/baton');
    assert.equal((await ok(['baton', '--version'])).trim(), PKG.version);
    assert.equal(await ok(['baton', 'config', 'example', 'sink']), SINK_EXAMPLE);
    const files = await ok(['dpkg', '-L', 'baton']);
    assert.equal(files.includes(ROOT), false, 'nothing points into the checkout');
    for (const f of [
      '/usr/share/bash-completion/completions/baton',
      '/usr/share/zsh/vendor-completions/_baton',
      '/usr/share/fish/vendor_completions.d/baton.fish',
      '/usr/share/doc/baton/copyright',
      '/usr/share/doc/baton/changelog.gz',
      '/usr/share/doc/baton/docs/upgrading.md',
      '/usr/share/doc/baton/examples/source.example.yaml',
    ]) {
      assert.ok(files.split('\n').includes(f), `${f} is in the package`);
    }
  });

  test('man baton shows the page generated from the commands, with every option of their --help', async () => {
    const page = await ok(['man', 'baton'], { MANPAGER: 'cat', MANWIDTH: '120' });
    assert.match(page, /^BATON\(1\)/);
    assert.match(page, new RegExp(`baton ${PKG.version.replaceAll('.', '\\.')}`));
    for (const args of [[], ['sink', 'pull'], ['install'], ['verify'], ['offsite', 'restore']]) {
      const options = await helpOptions('baton', args);
      assert.ok(options.length >= 2, `baton ${args.join(' ')} --help lists options`);
      for (const o of options)
        assert.ok(page.includes(o), `man baton mentions ${o} (of baton ${args.join(' ')})`);
    }
  });

  test('the shipped units pass systemd-analyze verify and are not enabled', async () => {
    const dir = '/usr/lib/systemd/system';
    const units = (await readdir(dir)).filter((n) => n.startsWith('baton-')).map((n) => join(dir, n));
    assert.ok(units.some((u) => u.endsWith('baton-source-backup.timer')));
    assert.ok(units.some((u) => u.endsWith('baton-sink-pull-data.timer')));
    assert.ok(units.some((u) => u.endsWith('baton-sink-verify.timer')));
    assert.ok(units.some((u) => u.endsWith('baton-source-failure@.service')));
    const r = await run(['systemd-analyze', 'verify', ...units]);
    assert.equal(r.code, 0, show(r));
    const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes('baton-'));
    assert.deepEqual(ours, []);
    for (const u of units) {
      assert.equal(existsSync(`/etc/systemd/system/timers.target.wants/${u.slice(dir.length + 1)}`), false);
      if (u.endsWith('.service'))
        assert.match(
          await readFile(u, 'utf8'),
          /ExecStart=\/usr\/bin\/node \S+ \/usr\/lib\/baton\/cli\/main\.js /,
        );
    }
  });

  test('dpkg -r and dpkg -P leave the config in /etc/baton and the store untouched', async () => {
    await writeFile(config, await ok(['baton', 'config', 'example', 'sink']));
    await mkdir(store, { recursive: true });
    await writeFile(join(store, 'kept'), 'a generation\n');
    await ok(['dpkg', '-r', 'baton']);
    assert.equal(existsSync('/usr/bin/baton'), false);
    assert.equal(existsSync('/usr/lib/baton'), false);
    assert.equal(await readFile(config, 'utf8'), SINK_EXAMPLE);
    assert.equal(await readFile(join(store, 'kept'), 'utf8'), 'a generation\n');
    await ok(['dpkg', '-P', 'baton']);
    await rm(LEFTOVER_MARK, { force: true });
    assert.equal(await installed(), false);
    assert.equal(await readFile(config, 'utf8'), SINK_EXAMPLE);
    assert.equal(await readFile(join(store, 'kept'), 'utf8'), 'a generation\n');
  });
});

test('the npm tarball installs a real copy with its dependencies bundled', async () => {
  const prefix = join(tmp, 'prefix');
  await ok(['npm', 'install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--offline', TGZ]);
  const bin = join(prefix, 'bin', 'baton');
  const target = await realpath(bin);
  assert.equal(target, join(prefix, 'lib', 'node_modules', 'baton-backup', 'cli', 'main.js'));
  assert.equal(target.startsWith(ROOT), false, 'the installed copy does not point into the checkout');
  assert.equal(existsSync(join(prefix, 'lib', 'node_modules', 'baton-backup', 'node_modules')), false);
  assert.equal((await ok([bin, '--version'])).trim(), PKG.version);
  assert.equal(await ok([bin, 'config', 'example', 'sink']), SINK_EXAMPLE);
  const manifest = JSON.parse(
    await readFile(join(prefix, 'lib', 'node_modules', 'baton-backup', 'package.json'), 'utf8'),
  ) as Record<string, unknown>;
  assert.equal(manifest.dependencies, undefined);
});
