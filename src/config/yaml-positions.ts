/**
 * Where in the YAML text a config problem is: walks a zod issue's key path through the parsed YAML
 * nodes (following aliases) to a line and column, and turns the YAML parser's own errors (syntax,
 * duplicate keys, unresolved aliases) into config problems.
 */
import { isAlias, isMap, isNode, isScalar, isSeq, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { formatKeyPath, nearBranchIssue, unknownKeyMessage, type ConfigProblem } from './explain.js';
import { jsonSchemaFor, propertyNamesAt } from './json-schema.js';
import type { ConfigKind } from './schema.js';

export interface IssueContext {
  doc: Document;
  data: unknown;
  kind: ConfigKind;
  at: (offset: number) => { line: number; col: number };
}

/** The problems one zod issue stands for, each at its line and column (one per unknown key). */
export function issueProblems(issue: z.core.$ZodIssue, ctx: IssueContext): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const allowed = propertyNamesAt(jsonSchemaFor(ctx.kind), issue.path);
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      return {
        ...ctx.at(locate(ctx.doc, path).keyAt),
        path: formatKeyPath(path),
        message: unknownKeyMessage(key, allowed),
      };
    });
  }
  const nested = nestedUnionIssue(issue);
  if (nested !== undefined) return issueProblems(nested, ctx);
  const spot = locate(ctx.doc, issue.path);
  // A missing key has no node: point at the key of the mapping it is missing from.
  const offset = spot.found && hasPath(ctx.data, issue.path) ? spot.valueAt : spot.keyAt;
  return [{ ...ctx.at(offset), path: formatKeyPath(issue.path), message: issue.message }];
}

// `start: [ls, 3]` fails inside the argv-list branch of a command: report it at `app.start[1]`.
function nestedUnionIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue | undefined {
  if (issue.code !== 'invalid_union') return undefined;
  const near = nearBranchIssue(issue.errors);
  return near === undefined || near.path.length === 0
    ? undefined
    : { ...near, path: [...issue.path, ...near.path] };
}

interface Spot {
  /** whether every path segment has a node */
  found: boolean;
  /** start of the deepest node found along the path (its key for an empty value) */
  valueAt: number;
  /** start of the key of the deepest node found (the item itself in a list; the document for []) */
  keyAt: number;
}

/** Walks a key path through the YAML nodes (following aliases) as far as it exists. */
function locate(doc: Document, path: readonly PropertyKey[]): Spot {
  let node: unknown = doc.contents;
  const start = startOf(node) ?? 0;
  let spot: Spot = { found: true, valueAt: start, keyAt: start };
  for (const seg of path) {
    const child = childOf(doc, node, seg);
    if (child === undefined) return { ...spot, found: false };
    const keyAt = startOf(child.key) ?? startOf(child.value) ?? spot.keyAt;
    spot = {
      found: true,
      keyAt,
      valueAt: isEmptyScalar(child.value) ? keyAt : (startOf(child.value) ?? keyAt),
    };
    node = child.value;
  }
  return spot;
}

function childOf(
  doc: Document,
  parent: unknown,
  seg: PropertyKey,
): { key: unknown; value: unknown } | undefined {
  const node = isAlias(parent) ? parent.resolve(doc) : parent;
  if (isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
    return pair === undefined ? undefined : { key: pair.key, value: pair.value };
  }
  if (isSeq(node) && typeof seg === 'number') {
    const item: unknown = node.items[seg];
    return item === undefined ? undefined : { key: undefined, value: item };
  }
  return undefined;
}

/** The offset where a YAML node starts in the text, if it is a node with a range. */
export function startOf(node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined;
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && node.range != null && node.range[0] === node.range[1];
}

function hasPath(data: unknown, path: readonly PropertyKey[]): boolean {
  let value = data;
  for (const seg of path) {
    if (Array.isArray(value) && typeof seg === 'number') {
      if (seg >= value.length) return false;
      value = value[seg];
    } else if (isRecord(value) && Object.hasOwn(value, String(seg))) {
      value = value[String(seg)];
    } else {
      return false;
    }
  }
  return true;
}

/** The key path of the map key starting at `offset` (for duplicate-key errors), if there is one. */
function keyPathAt(node: unknown, offset: number, path: PropertyKey[] = []): PropertyKey[] | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      if (startOf(pair.key) === offset) return [...path, key];
      const inner = keyPathAt(pair.value, offset, [...path, key]);
      if (inner !== undefined) return inner;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const inner = keyPathAt(item, offset, [...path, i]);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

interface YamlIssue {
  code: string;
  message: string;
  pos: [number, number];
}

/** A YAML parser error or warning as a config problem (a duplicate key names its key path). */
export function yamlProblem(doc: Document, e: YamlIssue, at: IssueContext['at']): ConfigProblem {
  if (e.code === 'DUPLICATE_KEY') {
    const path = keyPathAt(doc.contents, e.pos[0]);
    const key = path?.at(-1);
    return {
      ...at(e.pos[0]),
      path: path === undefined ? '' : formatKeyPath(path),
      message: key === undefined ? 'duplicate key' : `duplicate key "${String(key)}" (keys must be unique)`,
    };
  }
  return { ...at(e.pos[0]), path: '', message: `invalid YAML: ${e.message}` };
}

// toJS() throws on an unresolved alias or an alias bomb; report it instead.
export function yamlToData(doc: Document): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    const value: unknown = doc.toJS();
    return { ok: true, value };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

/** Where the document's first alias starts (blamed when the YAML cannot be turned into data). */
export function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_, alias) {
      offset = alias.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

/** A mapping as the YAML parser returns it (not a list, not binary data). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}
