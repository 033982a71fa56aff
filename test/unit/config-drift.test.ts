import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { exampleConfigFile, parseConfigText } from '../../src/config/load.js';
import {
  allPropertyNames,
  jsonSchemaFor,
  jsonSchemaText,
  propertyNamesAt,
} from '../../src/config/json-schema.js';
import { CONFIG_KINDS } from '../../src/config/schema.js';

// The schema in code is the single source; these committed copies must follow it.
const committedSchema = (kind: string): string =>
  readFileSync(new URL(`../../schema/${kind}.schema.json`, import.meta.url), 'utf8');

for (const kind of CONFIG_KINDS) {
  test(`committed schema/${kind}.schema.json -> equals jsonSchemaFor('${kind}') (else run scripts/gen-schema.ts)`, () => {
    assert.equal(committedSchema(kind), jsonSchemaText(kind));
  });

  test(`${kind} example config -> passes parseConfigText`, () => {
    const file = exampleConfigFile(kind);
    assert.doesNotThrow(() => parseConfigText(readFileSync(file, 'utf8'), file, kind));
  });

  test(`${kind} example config -> shows every key of the schema (as a key or a commented-out key)`, () => {
    const text = readFileSync(exampleConfigFile(kind), 'utf8');
    const names = allPropertyNames(jsonSchemaFor(kind));
    assert.ok(names.length > 10, 'the schema walk found too few keys');
    const missing = names.filter((name) => !new RegExp(`(^|[\\s{,#])${name}:`, 'm').test(text));
    assert.deepEqual(missing, [], `keys missing from ${kind}.example.yaml`);
  });

  test(`${kind} example config -> has a comment line for each top-level key`, () => {
    const lines = readFileSync(exampleConfigFile(kind), 'utf8').split('\n');
    const undocumented = propertyNamesAt(jsonSchemaFor(kind), []).filter((name) => {
      const i = lines.findIndex((l) => l.startsWith(`${name}:`));
      return i < 1 || !(lines[i - 1] ?? '').startsWith('#');
    });
    assert.deepEqual(undocumented, []);
  });
}

test('schema walk -> finds nested keys through lists and optional objects', () => {
  const sink = jsonSchemaFor('sink');
  assert.deepEqual(propertyNamesAt(sink, ['sources', 0, 'streams']), ['data', 'logs']);
  assert.ok(propertyNamesAt(jsonSchemaFor('source'), ['alerts', 'mail']).includes('sendmail'));
  assert.deepEqual(propertyNamesAt(sink, ['nonexistent']), []);
  assert.ok(allPropertyNames(sink).includes('keepDays'));
});
