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
