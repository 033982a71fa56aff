/** What a generation holds, as meta.json / verify report it. */
export interface GenerationSize {
  files: number;
  bytes: number;
}

export interface AnomalyJudgement {
  anomalous: boolean;
  /** One line per measure that dropped too far, e.g. `files dropped 80 % (1000 → 200)`. */
  reasons: string[];
}

/**
 * Given the previous verified generation's size (undefined for the first one), the new one's and a
 * threshold in percent (0 disables), returns whether the new generation shrank suspiciously: files
 * or bytes dropped by MORE than `dropPercent` percent. A sudden drop is what deleted data or an
 * attacker emptying the source looks like; retention must not push out the older generations then.
 *
 * Throws on a threshold outside 0–100.
 */
export function judgeSizeAnomaly(
  previous: GenerationSize | undefined,
  next: GenerationSize,
  dropPercent: number,
): AnomalyJudgement {
  if (!Number.isFinite(dropPercent) || dropPercent < 0 || dropPercent > 100)
    throw new RangeError(`dropPercent must be 0–100 (got ${String(dropPercent)})`);
  if (dropPercent === 0 || previous === undefined) return { anomalous: false, reasons: [] };
  const reasons: string[] = [];
  for (const key of ['files', 'bytes'] as const) {
    const before = previous[key];
    const after = next[key];
    if (before <= 0 || after >= before) continue;
    const drop = ((before - after) / before) * 100;
    if (drop > dropPercent) reasons.push(`${key} dropped ${Math.round(drop)} % (${before} → ${after})`);
  }
  return { anomalous: reasons.length > 0, reasons };
}
