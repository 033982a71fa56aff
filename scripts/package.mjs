#!/usr/bin/env node
// `npm run package` (after `npm run build`): the two ways to install baton without a checkout.
//
//   dist/baton_<version>_all.deb   Debian package, built with dpkg-deb:
//     /usr/lib/baton/cli/main.js          the bundled CLI (version and example configs embedded)
//     /usr/lib/baton/cli/chunks/          its parts loaded on demand (the gate's, the offsite store's)
//     /usr/lib/baton/config/examples/     the example configs, also for reading
//     /usr/bin/baton -> ../lib/baton/cli/main.js
//     /usr/lib/systemd/system/baton-*     the units `baton install` writes for the default configs
//                                         (/etc/baton/{source,sink}.yaml), shipped disabled
//     /usr/share/man/man1/baton.1.gz      generated from the commander command tree (src/cli/man.ts)
//     bash, zsh and fish completion       generated from the same tree (src/cli/completion)
//     /usr/share/doc/baton/               README, CHANGELOG, docs, copyright, examples
//   Nothing under /etc: configs in /etc/baton, state and stores are the operator's; `dpkg -r` and
//   `dpkg -P` never touch them.
//
//   dist/baton-backup-<version>.tgz  npm tarball (`npm install -g ./baton-backup-<version>.tgz`):
//     the same bundle, no dependencies (they are inside the bundle), under the npm name baton-backup
//     (the name `baton` belongs to another package).
//
// Options: --deb or --npm to build only one of them.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const version = pkg.version;
const NPM_NAME = 'baton-backup';

const { createRoot } = await import(`${dist}/cli/app.js`);
const { registerCommands } = await import(`${dist}/cli/commands/index.js`);
const { manPage } = await import(`${dist}/cli/man.js`);
const { completionTree } = await import(`${dist}/cli/completion/spec.js`);
const { bashCompletion, zshCompletion, fishCompletion } = await import(`${dist}/cli/completion/scripts.js`);
const { packagedUnits } = await import(`${dist}/cli/packaged-units.js`);
const { NODE_FLAGS } = await import(`${dist}/cli/node-flags.js`);

const cli = createRoot();
registerCommands(cli);
const tree = completionTree(cli);
const bundle = `${dist}/cli/main.js`;
if (!readFileSync(bundle, 'utf8').includes('__batonCreateRequire')) {
  throw new Error(`${bundle} is not the bundle: run \`npm run build\` first`);
}

// gzip -n: no name or time in the header, so the same input gives the same bytes
const gz = (text) => gzipSync(Buffer.from(text), { level: 9 });

function put(file, content, mode = 0o644) {
  mkdirSync(file.slice(0, file.lastIndexOf('/')), { recursive: true });
  writeFileSync(file, content);
  chmodSync(file, mode);
}

function buildDeb() {
  const stage = `${dist}/deb`;
  rmSync(stage, { recursive: true, force: true });
  const lib = `${stage}/usr/lib/baton`;
  put(`${lib}/cli/main.js`, readFileSync(bundle), 0o755);
  cpSync(`${dist}/cli/chunks`, `${lib}/cli/chunks`, { recursive: true });
  cpSync(`${root}src/config/examples`, `${lib}/config/examples`, { recursive: true });
  mkdirSync(`${stage}/usr/bin`, { recursive: true });
  symlinkSync('../lib/baton/cli/main.js', `${stage}/usr/bin/baton`);

  const argv = ['/usr/bin/node', ...NODE_FLAGS, '/usr/lib/baton/cli/main.js'];
  for (const u of packagedUnits(argv)) put(`${stage}/usr/lib/systemd/system/${u.name}`, u.content);

  put(`${stage}/usr/share/man/man1/baton.1.gz`, gz(manPage(cli, version)));
  put(`${stage}/usr/share/bash-completion/completions/baton`, bashCompletion(tree));
  put(`${stage}/usr/share/zsh/vendor-completions/_baton`, zshCompletion(tree));
  put(`${stage}/usr/share/fish/vendor_completions.d/baton.fish`, fishCompletion(tree));

  const doc = `${stage}/usr/share/doc/baton`;
  put(`${doc}/copyright`, debianCopyright());
  put(`${doc}/changelog.gz`, gz(readFileSync(`${root}CHANGELOG.md`, 'utf8')));
  put(`${doc}/README.md`, readFileSync(`${root}README.md`));
  for (const f of readdirSync(`${root}docs`).filter((n) => n.endsWith('.md'))) {
    put(`${doc}/docs/${f}`, readFileSync(`${root}docs/${f}`));
  }
  cpSync(`${root}src/config/examples`, `${doc}/examples`, { recursive: true });

  const installedKb = Math.ceil(
    Number(execFileSync('du', ['-sk', '--apparent-size', stage]).toString().split('\t')[0]),
  );
  put(
    `${stage}/DEBIAN/control`,
    `Package: baton
Version: ${version}
Architecture: all
Maintainer: the baton authors <baton@localhost>
Installed-Size: ${installedKb}
Depends: nodejs (>= 20), rsync, openssh-client, python3
Recommends: openssh-server
Suggests: btrfs-progs, age, default-mta | mail-transport-agent
Section: admin
Priority: optional
Description: app-consistent backups over ssh + rsync, generations on both sides
 baton stops an application briefly, collects its data and logs into a
 generation, starts it again, and hands the generation to a second server
 that pulls it over ssh + rsync as restricted users, verifies every file by
 hash and keeps generations on both sides.
 .
 Set up a host with \`baton install source|sink\`; the systemd timers shipped
 here stay disabled until you enable them.
`,
  );
  // daemon-reload so systemd sees new or changed units; nothing is enabled or started.
  const reload = 'if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi\n';
  put(
    `${stage}/DEBIAN/postinst`,
    `#!/bin/sh
set -e
# The operator's configs go here; dpkg does not own this directory, so removing the package leaves it.
[ "$1" = configure ] && mkdir -p /etc/baton
${reload}exit 0
`,
    0o755,
  );
  // Stop running baton timers on removal (an upgrade keeps them); enable links, configs and stores stay.
  put(
    `${stage}/DEBIAN/prerm`,
    `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop ${packagedUnits(argv)
    .filter((u) => u.name.endsWith('.timer'))
    .map((u) => u.name)
    .join(' ')} >/dev/null 2>&1 || true
fi
exit 0
`,
    0o755,
  );
  put(`${stage}/DEBIAN/postrm`, `#!/bin/sh\nset -e\n${reload}exit 0\n`, 0o755);

  const out = `${dist}/baton_${version}_all.deb`;
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, out], { stdio: 'inherit' });
  rmSync(stage, { recursive: true, force: true });
  return out;
}

function buildNpm() {
  const stage = `${dist}/npm`;
  rmSync(stage, { recursive: true, force: true });
  put(`${stage}/cli/main.js`, readFileSync(bundle), 0o755);
  cpSync(`${dist}/cli/chunks`, `${stage}/cli/chunks`, { recursive: true });
  put(`${stage}/man/baton.1`, manPage(cli, version));
  put(`${stage}/README.md`, readFileSync(`${root}README.md`));
  put(`${stage}/LICENSE`, readFileSync(`${root}LICENSE`));
  put(`${stage}/CHANGELOG.md`, readFileSync(`${root}CHANGELOG.md`));
  cpSync(`${root}src/config/examples`, `${stage}/config/examples`, { recursive: true });
  const manifest = {
    name: NPM_NAME,
    version,
    description: pkg.description,
    license: pkg.license,
    type: 'module',
    bin: { baton: 'cli/main.js' },
    man: ['man/baton.1'],
    engines: pkg.engines,
    os: ['linux'],
    // no dependencies: they are bundled into cli/main.js
  };
  put(`${stage}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', dist], { cwd: stage })
    .toString()
    .trim()
    .split('\n')
    .at(-1);
  rmSync(stage, { recursive: true, force: true });
  return `${dist}/${name}`;
}

function debianCopyright() {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: baton

Files: *
Copyright: the baton authors
License: MIT

Files: usr/lib/baton/cli/main.js usr/lib/baton/cli/chunks/*
Comment: the bundle includes its npm dependencies; their licence notices are at the end of that file.

License: MIT
${readFileSync(`${root}LICENSE`, 'utf8')
  .split('\n')
  .map((l) => (l === '' ? ' .' : ` ${l}`))
  .join('\n')}
`;
}

const only = process.argv[2];
if (only !== undefined && only !== '--deb' && only !== '--npm') {
  throw new Error(`usage: node scripts/package.mjs [--deb|--npm] (got ${only})`);
}
if (only !== '--npm') console.log(`package: ${buildDeb()}`);
if (only !== '--deb') console.log(`package: ${buildNpm()}`);
