/**
 * Config problems in plain words: the zod error map that turns zod's generic issues into sentences
 * (`expected a list, got "abc"`, `unknown key "strat" (did you mean "start"?)`), key paths as people
 * write them, and the `FILE:LINE:COL: key.path: message` lines a failed check prints.
 */
import type { z } from 'zod';

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
export function explainIssue(issue: z.core.$ZodRawIssue): string | undefined {
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
export function nearBranchIssue(
  branches: readonly (readonly z.core.$ZodIssue[])[],
): z.core.$ZodIssue | undefined {
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

export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
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
