import { readFileSync } from 'node:fs';

function readVersion(): string {
  // dist/version.js and src/version.ts both sit one level below the package root.
  const raw: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  if (typeof raw === 'object' && raw !== null && 'version' in raw && typeof raw.version === 'string') {
    return raw.version;
  }
  return '0.0.0';
}

export const batonVersion: string = readVersion();
