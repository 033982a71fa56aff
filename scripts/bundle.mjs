#!/usr/bin/env node
// Bundles the CLI into dist/cli/main.js (over tsc's) and its chunks in dist/cli/chunks/, with its
// dependencies: Node then loads a few modules instead of about 200, and every start of baton costs
// about 0.15 s instead of 0.45 s. That counts: one `sink pull` starts the gate on the source for the
// list, the tree and the ack. Split at main.ts's dynamic imports: `baton gate` loads the gate's chunk
// and what it shares, not the sink, the offsite engine or the AWS SDK. Run by `npm run build` after tsc
// and copy-assets; the rest of dist/ stays as tsc wrote it.
// The bundle embeds the version and the example configs (src/build-info.ts): it needs no file beside
// it but its chunks, so the .deb and the npm tarball (scripts/package.mjs) ship main.js and chunks/.
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/cli`;
// chunks of an earlier build are never loaded again: remove them, the install copies dist/ whole
rmSync(`${outdir}/chunks`, { recursive: true, force: true });
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const example = (kind) => readFileSync(`${root}src/config/examples/${kind}.example.yaml`, 'utf8');
const buildInfo = { version: pkg.version, examples: { source: example('source'), sink: example('sink') } };
await build({
  entryPoints: { main: `${root}src/cli/main.ts` },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  define: { __BATON_BUILD_INFO__: JSON.stringify(buildInfo) },
  // CommonJS dependencies (nodemailer) call require() for Node's own modules
  banner: {
    js: "import { createRequire as __batonCreateRequire } from 'node:module';\nconst require = __batonCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  legalComments: 'eof',
});
chmodSync(`${outdir}/main.js`, 0o755);
