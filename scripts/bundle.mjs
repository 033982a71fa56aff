#!/usr/bin/env node
// Bundles the CLI into one file, dist/cli/main.js (over tsc's), with its dependencies: Node then
// loads one module instead of about 200, and every start of baton costs about 0.15 s instead of 0.45 s.
// That counts: one `sink pull` starts baton five times (itself, and the gate for list, manifest,
// tree and ack). Run by `npm run build` after tsc and copy-assets; the rest of dist/ stays as tsc wrote it.
// The bundle embeds the version and the example configs (src/build-info.ts): it needs no file beside
// it, so the .deb and the npm tarball (scripts/package.mjs) ship this one file.
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/cli/main.js`;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const example = (kind) => readFileSync(`${root}src/config/examples/${kind}.example.yaml`, 'utf8');
const buildInfo = { version: pkg.version, examples: { source: example('source'), sink: example('sink') } };
await build({
  entryPoints: [`${root}src/cli/main.ts`],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  define: { __BATON_BUILD_INFO__: JSON.stringify(buildInfo) },
  // CommonJS dependencies (nodemailer, pino) call require() for Node's own modules
  banner: {
    js: "import { createRequire as __batonCreateRequire } from 'node:module';\nconst require = __batonCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  legalComments: 'eof',
});
chmodSync(outfile, 0o755);
