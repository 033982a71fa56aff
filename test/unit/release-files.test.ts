// The files an operator reads before an upgrade: a licence, a changelog kept from 0.1.0 on, with a
// section for the version package.json carries, and upgrade notes for that version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (f: string) => readFileSync(`${ROOT}${f}`, 'utf8');
const { version } = z.object({ version: z.string() }).parse(JSON.parse(read('package.json')));

test('LICENSE names its licence and its holder', () => {
  const text = read('LICENSE');
  assert.match(text.split('\n')[0] ?? '', /License/i);
  assert.match(text, /Copyright \(c\) \d{4} /);
});

test('CHANGELOG: an Unreleased section first, then one for the version package.json carries', () => {
  const heads = read('CHANGELOG.md')
    .split('\n')
    .filter((l) => l.startsWith('## '));
  assert.equal(heads[0], '## [Unreleased]');
  assert.ok(
    heads.some((h) => h.startsWith(`## [${version}] - `)),
    `a "## [${version}] - DATE" section: ${heads.join(' | ')}`,
  );
});

test('docs/upgrading.md has notes for the version package.json carries', () => {
  assert.match(read('docs/upgrading.md'), new RegExp(`^## .*\\(${version.replaceAll('.', '\\.')}\\)`, 'm'));
});
