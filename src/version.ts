import { readFileSync } from 'node:fs';
import { buildInfo } from './build-info.js';

/**
 * The package's version from its package.json: one level up from src/version.ts and dist/version.js,
 * two from the bundled dist/cli/main.js.
 */
function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
    } catch {
      continue;
    }
    if (typeof raw === 'object' && raw !== null && 'name' in raw && raw.name === 'baton') {
      return 'version' in raw && typeof raw.version === 'string' ? raw.version : '0.0.0';
    }
  }
  return '0.0.0';
}

/** The bundle carries its version (build-info.ts); tsc's dist/ and tsx read package.json. */
export const batonVersion: string = buildInfo?.version ?? readVersion();
