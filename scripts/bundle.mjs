#!/usr/bin/env node
// Bundles the CLI into one file, dist/cli/main.js (over tsc's), with its dependencies: Node then
// loads one module instead of about 200, and every start of baton costs about 0.15 s instead of 0.45 s.
// That counts: one `sink pull` starts baton five times (itself, and the gate for list, manifest,
// tree and ack). Run by `npm run build` after tsc and copy-assets; the rest of dist/ stays as tsc wrote it.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/cli/main.js`;
// dynamic imports (the AWS SDK of the offsite store) go to chunks loaded only when used
const chunks = `${root}dist/cli/chunks`;
rmSync(chunks, { recursive: true, force: true });
await build({
  entryPoints: [`${root}src/cli/main.ts`],
  outdir: `${root}dist/cli`,
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies (nodemailer, pino) call require() for Node's own modules
  banner: {
    js: "import { createRequire as __batonCreateRequire } from 'node:module';\nconst require = __batonCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  legalComments: 'eof',
});
chmodSync(outfile, 0o755);
