#!/usr/bin/env node
// tsc copies no non-TypeScript files: put the assets the built CLI reads next to its modules in dist/.
// Run by `npm run build` after tsc.
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ASSETS = [['src/config/examples', 'dist/config/examples']];

for (const [from, to] of ASSETS) {
  cpSync(`${root}${from}`, `${root}${to}`, { recursive: true });
}
