import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
} from 'yaml';
import type { z } from 'zod';
import { ConfigError, JobError } from '../errors.js';
import { jsonSchemaFor, propertyNamesAt } from './json-schema.js';
import { sinkSchema, sourceSchema, type ConfigKind, type SinkConfig, type SourceConfig } from './schema.js';

export type LoadedConfig = { kind: 'source'; config: SourceConfig } | { kind: 'sink'; config: SinkConfig };

/**
 * One thing wrong with a config file. `line`/`col` are 1-based; `path` is a key path like
 * `streams.data.paths[0]`, or '' when the problem is the file as a whole (YAML syntax, empty file).
 */
export interface ConfigProblem {
  line: number;
  col: number;
  path: string;
  message: string;
}

export type ConfigCheck =
  { ok: true; loaded: LoadedConfig } | { ok: false; kind: ConfigKind | undefined; problems: ConfigProblem[] };

/** What `baton config check --json` prints. line/col/path are null when the file could not be read. */
export interface ConfigReport {
  ok: boolean;
  kind: ConfigKind | null;
  file: string;
  errors: { line: number | null; col: number | null; path: string | null; message: string }[];
}

/** A config file that is not valid YAML or does not match its schema; `problems` lists every problem. */
export class InvalidConfigError extends ConfigError {
  readonly file: string;
  readonly kind: ConfigKind | undefined;
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, kind: ConfigKind | undefined, problems: readonly ConfigProblem[]) {
    super(formatProblems(file, problems));
    this.file = file;
    this.kind = kind;
    this.problems = problems;
  }
}

/**
 * Given config text, the file name it came from (for messages) and its kind, returns the typed config
 * with defaults applied. Throws InvalidConfigError (a ConfigError, exit 2) listing every problem as
 * `FILE:LINE:COL: key.path: what is wrong`, the first line standing alone as the summary.
 */
export function parseConfigText(text: string, file: string, kind: 'source'): SourceConfig;
export function parseConfigText(text: string, file: string, kind: 'sink'): SinkConfig;
export function parseConfigText(text: string, file: string, kind: ConfigKind): SourceConfig | SinkConfig;
export function parseConfigText(text: string, file: string, kind: ConfigKind): SourceConfig | SinkConfig {
  return parseAnyConfigText(text, file, kind).config;
}

/** As parseConfigText, but the kind may be omitted: it is then inferred from the top-level keys. */
export function parseAnyConfigText(text: string, file: string, kind?: ConfigKind): LoadedConfig {
  const checked = checkConfigText(text, kind);
  if (!checked.ok) throw new InvalidConfigError(file, checked.kind, checked.problems);
  return checked.loaded;
}

/**
 * Reads and validates a config file. Without `kind`, a top-level `store:`/`sources:` key makes it a sink
 * config and `app:`/`streams:` a source config. Throws ConfigError when the file cannot be read and
 * InvalidConfigError when it is not valid.
 */
export async function loadConfig(file: string, kind?: ConfigKind): Promise<LoadedConfig> {
  return parseAnyConfigText(await readConfigFile(file), file, kind);
}

/** The source config at `file`, defaults applied; throws ConfigError. */
export async function loadSourceConfig(file: string): Promise<SourceConfig> {
  return parseConfigText(await readConfigFile(file), file, 'source');
}

/** The sink config at `file`, defaults applied; throws ConfigError. */
export async function loadSinkConfig(file: string): Promise<SinkConfig> {
  return parseConfigText(await readConfigFile(file), file, 'sink');
}

/** Checks a config file and reports instead of throwing (an unreadable file is a report too). */
export async function checkConfigFile(file: string, kind?: ConfigKind): Promise<ConfigReport> {
  let text: string;
  try {
    text = await readConfigFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return {
      ok: false,
      kind: kind ?? null,
      file,
      errors: [{ line: null, col: null, path: null, message: err.message }],
    };
  }
  const checked = checkConfigText(text, kind);
  return checked.ok
    ? { ok: true, kind: checked.loaded.kind, file, errors: [] }
    : { ok: false, kind: checked.kind ?? null, file, errors: checked.problems };
}

/**
 * Where the commented example config of a kind lives: src/config/examples, copied to dist/config/examples
 * (the path is written from one level down so that it also holds in the bundled dist/cli/main.js).
 */
export function exampleConfigFile(kind: ConfigKind): string {
  return fileURLToPath(new URL(`../config/examples/${kind}.example.yaml`, import.meta.url));
}

/** The commented example config of a kind (`baton config example`). */
export async function readExampleConfig(kind: ConfigKind): Promise<string> {
  const file = exampleConfigFile(kind);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new JobError(`cannot read the bundled example ${file}: ${describeFsError(err)}`, { cause: err });
  }
}

/**
 * The pure core: parses YAML and validates it against the schema of `kind` (inferred when omitted).
 * Returns the typed config, or every problem found, sorted by position. Never throws.
 */
export function checkConfigText(text: string, kind?: ConfigKind): ConfigCheck {
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  const at = (offset: number): { line: number; col: number } => lines.linePos(offset);
  const fail = (problems: ConfigProblem[], k = kind): ConfigCheck => ({
    ok: false,
    kind: k,
    problems: sortProblems(problems),
  });

  const yamlProblems = [...doc.errors, ...doc.warnings].map((e) => yamlProblem(doc, e, at));
  if (yamlProblems.length > 0) return fail(yamlProblems);

  const data = yamlToData(doc);
  if (!data.ok)
    return fail([{ ...at(firstAliasOffset(doc)), path: '', message: `invalid YAML: ${data.message}` }]);
  if (data.value === null || data.value === undefined) {
    return fail([
      { line: 1, col: 1, path: '', message: `the file is empty: expected a ${kind ?? 'baton'} config` },
    ]);
  }
  const top = at(startOf(doc.contents) ?? 0);
  if (!isRecord(data.value)) {
    const message = `expected a mapping of config keys at the top level, got ${describeValue(data.value)}`;
    return fail([{ ...top, path: '', message }]);
  }

  const chosen = chooseKind(kind, inferConfigKind(Object.keys(data.value)));
  if (!chosen.ok) return fail([{ ...top, path: '', message: chosen.message }]);
  const resolved = chosen.kind;

  const result = validate(resolved, data.value);
  if (result.ok) return result;
  const problems = result.issues.flatMap((issue) =>
    issueProblems(issue, { doc, data: data.value, kind: resolved, at }),
  );
  return fail(problems, resolved);
}

const KIND_KEYS: Record<ConfigKind, readonly string[]> = {
  source: ['app:', 'streams:'],
  sink: ['store:', 'sources:'],
};

/**
 * Given the top-level keys of a config, returns its kind: 'sink' for `store`/`sources`, 'source' for
 * `app`/`streams`, 'ambiguous' when both kinds of keys are present, undefined when neither is.
 */
export function inferConfigKind(topLevelKeys: readonly string[]): ConfigKind | 'ambiguous' | undefined {
  const has = (k: ConfigKind): boolean => KIND_KEYS[k].some((key) => topLevelKeys.includes(key.slice(0, -1)));
  if (has('source') && has('sink')) return 'ambiguous';
  if (has('source')) return 'source';
  if (has('sink')) return 'sink';
  return undefined;
}

// The kind named by the caller wins, unless the keys clearly say it is the other one.
function chooseKind(
  given: ConfigKind | undefined,
  inferred: ConfigKind | 'ambiguous' | undefined,
): { ok: true; kind: ConfigKind } | { ok: false; message: string } {
  const keys = `app:/streams: (source) or store:/sources: (sink)`;
  if (given !== undefined) {
    if (inferred === undefined || inferred === 'ambiguous' || inferred === given)
      return { ok: true, kind: given };
    const has = KIND_KEYS[inferred].join('/');
    return { ok: false, message: `this is a ${inferred} config (it has ${has}), expected a ${given} config` };
  }
  if (inferred === 'ambiguous') {
    return {
      ok: false,
      message: `cannot tell a source from a sink config: it has both ${keys} keys; name the kind`,
    };
  }
  if (inferred === undefined) {
    return {
      ok: false,
      message: `not a baton config: no top-level ${keys} key; name the kind (source or sink)`,
    };
  }
  return { ok: true, kind: inferred };
}

type Validated = { ok: true; loaded: LoadedConfig } | { ok: false; issues: z.core.$ZodIssue[] };

function validate(kind: ConfigKind, data: unknown): Validated {
  if (kind === 'source') {
    const r = sourceSchema.safeParse(data, { error: explainIssue });
    return r.success ? { ok: true, loaded: { kind, config: r.data } } : { ok: false, issues: r.error.issues };
  }
  const r = sinkSchema.safeParse(data, { error: explainIssue });
  return r.success ? { ok: true, loaded: { kind, config: r.data } } : { ok: false, issues: r.error.issues };
}

// ---- messages ------------------------------------------------------------------------------------

/** `FILE:L:C: path: message` lines; the first carries ` (+N more problems)` so it stands alone. */
export function formatProblems(file: string, problems: readonly ConfigProblem[]): string {
  const [first, ...rest] = problems.map((p) => formatProblem(file, p));
  if (first === undefined) return `${file}: invalid config`;
  if (rest.length === 0) return first;
  return [`${first} (+${rest.length} more problem${rest.length === 1 ? '' : 's'})`, ...rest].join('\n');
}

function formatProblem(file: string, p: ConfigProblem): string {
  return `${file}:${p.line}:${p.col}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** `['streams', 'data', 'paths', 0]` → `streams.data.paths[0]`; odd keys are quoted: `a["x y"]`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, seg) => {
    if (typeof seg === 'number') return `${acc}[${seg}]`;
    const key = String(seg);
    if (!/^[A-Za-z_$][\w$-]*$/.test(key)) return `${acc}[${JSON.stringify(key)}]`;
    return acc === '' ? key : `${acc}.${key}`;
  }, '');
}

const NOUNS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  tuple: 'a list',
  null: 'an empty value',
};

/** A short description of a parsed YAML value for messages: `"abc"`, `42`, `a list`, `an empty value`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  return typeof value === 'object' ? 'a mapping' : typeof value;
}

/**
 * The per-parse zod error map: plain-words messages for zod's generic issues. Messages the schema sets
 * itself (durations, paths, names) take precedence over this; undefined falls back to zod's text.
 */
function explainIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) {
    return 'missing required key';
  }
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${NOUNS[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
    case 'invalid_union':
      return explainUnion(issue.errors, issue.input);
    case 'too_small':
      return explainBound('at least', issue.origin, issue.minimum, issue.inclusive, issue.input);
    case 'too_big':
      return explainBound('at most', issue.origin, issue.maximum, issue.inclusive, issue.input);
    case 'invalid_format':
      return issue.format === 'url'
        ? `expected a URL like https://host/path, got ${describeValue(issue.input)}`
        : undefined;
    default:
      return undefined;
  }
}

// No branch took the value's type → "expected a string or a list"; one did → that branch's complaint.
function explainUnion(
  branches: readonly (readonly z.core.$ZodIssue[])[],
  input: unknown,
): string | undefined {
  const near = nearBranchIssue(branches);
  if (near !== undefined)
    return near.path.length === 0 ? near.message : `${formatKeyPath(near.path)}: ${near.message}`;
  const expected = branches.flatMap((issues) =>
    issues.flatMap((i) => (i.code === 'invalid_type' ? [NOUNS[i.expected] ?? i.expected] : [])),
  );
  if (expected.length === 0) return undefined;
  return `expected ${[...new Set(expected)].join(' or ')}, got ${describeValue(input)}`;
}

// The first complaint of the first union branch that accepted the value's type, if any did.
function nearBranchIssue(branches: readonly (readonly z.core.$ZodIssue[])[]): z.core.$ZodIssue | undefined {
  const typeOnly = (issues: readonly z.core.$ZodIssue[]): boolean =>
    issues.every((i) => i.code === 'invalid_type' && i.path.length === 0);
  return branches.find((issues) => issues.length > 0 && !typeOnly(issues))?.[0];
}

function explainBound(
  word: 'at least' | 'at most',
  origin: string,
  bound: number | bigint,
  inclusive: boolean | undefined,
  input: unknown,
): string | undefined {
  const n = Number(bound);
  if (origin === 'string') {
    return word === 'at least' && n === 1 ? 'must not be empty' : `must be ${word} ${n} characters long`;
  }
  if (origin === 'array' || origin === 'set') {
    return word === 'at least' && n === 1 ? 'must list at least one item' : `must list ${word} ${n} items`;
  }
  if (origin === 'number' || origin === 'int' || origin === 'bigint') {
    const limit = inclusive === false ? `${word === 'at least' ? 'more' : 'less'} than ${n}` : `${word} ${n}`;
    return `must be ${limit}, got ${describeValue(input)}`;
  }
  return undefined;
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const guess = closestName(key, allowed);
  if (guess !== undefined) return `unknown key "${key}" (did you mean "${guess}"?)`;
  return allowed.length === 0
    ? `unknown key "${key}"`
    : `unknown key "${key}" (expected one of: ${allowed.join(', ')})`;
}

/** The name in `names` a typo most likely meant (case-insensitive edit distance ≤ 2), if any. */
export function closestName(word: string, names: readonly string[]): string | undefined {
  const scored = names.map((name) => ({ name, d: editDistance(word.toLowerCase(), name.toLowerCase()) }));
  const best = scored.sort((a, b) => a.d - b.d)[0];
  return best !== undefined && best.d <= Math.min(2, Math.floor(word.length / 3)) ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

// ---- positions -----------------------------------------------------------------------------------

interface IssueContext {
  doc: Document;
  data: unknown;
  kind: ConfigKind;
  at: (offset: number) => { line: number; col: number };
}

function issueProblems(issue: z.core.$ZodIssue, ctx: IssueContext): ConfigProblem[] {
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

function startOf(node: unknown): number | undefined {
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

function yamlProblem(doc: Document, e: YamlIssue, at: IssueContext['at']): ConfigProblem {
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
function yamlToData(doc: Document): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    const value: unknown = doc.toJS();
    return { ok: true, value };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_, alias) {
      offset = alias.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.col - b.p.col || a.i - b.i)
    .map(({ p }) => p);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${describeFsError(err)}`, { cause: err });
  }
}

// "ENOENT: no such file or directory, open '/x'" → "ENOENT: no such file or directory" (the file is named already)
function describeFsError(err: unknown): string {
  return err instanceof Error ? err.message.replace(/, \w+ '[^']*'$/, '') : String(err);
}
