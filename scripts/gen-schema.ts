// Writes the committed JSON Schemas schema/<kind>.schema.json from the zod schema in src/config/schema.ts.
// Run after changing the schema: node --import tsx scripts/gen-schema.ts
// (test/unit/config-drift.test.ts fails while the committed copies differ.)
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jsonSchemaText } from '../src/config/json-schema.js';
import { CONFIG_KINDS } from '../src/config/schema.js';

const dir = fileURLToPath(new URL('../schema/', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const kind of CONFIG_KINDS) {
  const file = `${dir}${kind}.schema.json`;
  writeFileSync(file, jsonSchemaText(kind));
  console.log(`wrote ${file}`);
}
