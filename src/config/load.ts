/**
 * Loading a config: reads the file, parses the YAML, infers or checks its kind (source or sink) and
 * validates it against the one schema. Problems are located in the text by yaml-positions.ts and put
 * in words by explain.ts.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { buildInfo } from '../build-info.js';
import { ConfigError, JobError } from '../errors.js';
import { describeValue, explainIssue, formatProblems, type ConfigProblem } from './explain.js';
import { sinkSchema, sourceSchema, type ConfigKind, type SinkConfig, type SourceConfig } from './schema.js';
import {
  firstAliasOffset,
  isRecord,
  issueProblems,
  startOf,
  yamlProblem,
  yamlToData,
} from './yaml-positions.js';

export type LoadedConfig = { kind: 'source'; config: SourceConfig } | { kind: 'sink'; config: SinkConfig };

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
  const embedded = buildInfo?.examples[kind];
  if (embedded !== undefined) return embedded;
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

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.col - b.p.col || a.i - b.i)
    .map(({ p }) => p);
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
