import { z } from 'zod';
import { sinkSchema, sourceSchema, type ConfigKind } from './schema.js';

export type JsonSchema = z.core.JSONSchema.BaseSchema;
type JsonSchemaNode = z.core.JSONSchema._JSONSchema;

/**
 * The JSON Schema (draft-07) of a config file, as an editor sees it: the input side of the zod schema,
 * so durations are strings like `2m` and keys with defaults are optional. Committed as
 * schema/<kind>.schema.json by scripts/gen-schema.ts; test/unit/config-drift.test.ts keeps them equal.
 */
export function jsonSchemaFor(kind: ConfigKind): JsonSchema {
  return z.toJSONSchema(kind === 'source' ? sourceSchema : sinkSchema, { target: 'draft-7', io: 'input' });
}

/** `jsonSchemaFor(kind)` as the committed file text: 2-space indented, trailing newline. */
export function jsonSchemaText(kind: ConfigKind): string {
  return `${JSON.stringify(jsonSchemaFor(kind), null, 2)}\n`;
}

/**
 * Given a JSON Schema and a key path into a document (`['streams', 'data']`, `['sources', 0]`), returns the
 * property names allowed at that place, or [] when the path leads nowhere known.
 */
export function propertyNamesAt(schema: JsonSchemaNode, path: readonly PropertyKey[]): string[] {
  const node = objectBranch(schema);
  if (node === undefined) return [];
  const [head, ...rest] = path;
  if (head === undefined) return Object.keys(node.properties ?? {});
  if (typeof head === 'number') {
    const items = node.items;
    return items === undefined || Array.isArray(items) ? [] : propertyNamesAt(items, rest);
  }
  const child = node.properties?.[String(head)];
  return child === undefined ? [] : propertyNamesAt(child, rest);
}

/** Every property name anywhere in a JSON Schema (under properties, items and anyOf), each once. */
export function allPropertyNames(schema: JsonSchemaNode): string[] {
  const names = new Set<string>();
  const walk = (node: JsonSchemaNode): void => {
    if (typeof node === 'boolean') return;
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      names.add(key);
      walk(child);
    }
    if (node.items !== undefined) (Array.isArray(node.items) ? node.items : [node.items]).forEach(walk);
    node.anyOf?.forEach(walk);
  };
  walk(schema);
  return [...names];
}

// `anyOf: [{type: string}, {type: object, …}]` → the object branch; a plain schema → itself.
function objectBranch(node: JsonSchemaNode): z.core.JSONSchema.JSONSchema | undefined {
  if (typeof node === 'boolean') return undefined;
  if (node.properties !== undefined || node.items !== undefined) return node;
  return node.anyOf?.map(objectBranch).find((branch) => branch !== undefined);
}
