/**
 * The names of one generation directory and of the work areas beside it, spelled once (docs/design.md §4).
 * Pure: imports nothing, so core/ may use it too.
 */

/** Generation ids are UTC timestamps to the second: `2026-11-28T061922Z`. They sort by age. */
export const GENERATION_ID_PATTERN = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$/;

export function formatGenerationId(at: Date): string {
  const iso = at.toISOString(); // 2026-11-28T06:19:22.123Z
  return `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** True only for a well-formed id naming a real instant (hostile names from a source fail here). */
export function isGenerationId(name: string): boolean {
  return parseGenerationId(name) !== undefined;
}

/** The instant an id names, or undefined when the name is not an id. */
export function parseGenerationId(name: string): Date | undefined {
  if (!GENERATION_ID_PATTERN.test(name)) return undefined;
  const iso = `${name.slice(0, 10)}T${name.slice(11, 13)}:${name.slice(13, 15)}:${name.slice(15, 17)}Z`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || formatGenerationId(d) !== name) return undefined;
  return d;
}

/** Ids newest first. */
export function sortNewestFirst(ids: readonly string[]): string[] {
  return [...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

/** The four top-level names of a generation directory. */
export const TREE = 'tree';
export const MANIFEST = 'manifest';
export const META_JSON = 'meta.json';
export const SHA256SUMS = 'SHA256SUMS';
export const GENERATION_NAMES: ReadonlySet<string> = new Set([TREE, MANIFEST, META_JSON, SHA256SUMS]);

/** Inside a generation being built: the manifest until it is complete (renamed to `manifest` last). */
export const MANIFEST_PARTIAL = 'manifest.partial';

/** Work areas in a handover, store or stream directory (dot-names never count as generations). */
export const INCOMING_DIR = '.incoming';
export const QUARANTINE_DIR = '.quarantine';
export const REJECTED_DIR = '.rejected';
export const GATE_EVENTS_DIR = '.gate-events';
export const BAD_MARKS_DIR = '.bad';

/** `.<id>.partial`: a generation being built beside the finished ones. */
export function partialName(id: string): string {
  return `.${id}.partial`;
}

/** `.<id>.deleting`: a generation renamed out of the store's count before it is removed. */
export function deletingName(id: string): string {
  return `.${id}.deleting`;
}

/** The id and kind of a `.<id>.partial` / `.<id>.deleting` work name, or undefined for any other name. */
export function parseWorkName(name: string): { id: string; kind: 'partial' | 'deleting' } | undefined {
  const m = /^\.(.+)\.(partial|deleting)$/.exec(name);
  if (!m?.[1] || !m[2] || !GENERATION_ID_PATTERN.test(m[1])) return undefined;
  return { id: m[1], kind: m[2] === 'partial' ? 'partial' : 'deleting' };
}
