import {
  formatRunRecord,
  nextRunHistory,
  runHistoryFile,
  type SinkRunRecord,
  type SourceRunRecord,
} from '../core/run-record.js';
import { readJsonIfExists, writeFileAtomic } from './fsx.js';

/**
 * Writes a run record (`file`) and adds it to its history file beside it (at most RUN_HISTORY_MAX
 * runs, oldest dropped), each written atomically. A history that cannot be read starts anew: it
 * never fails the run record.
 */
export async function writeRunRecord(
  file: string,
  record: SourceRunRecord | SinkRunRecord,
  mode = 0o644,
): Promise<void> {
  await writeFileAtomic(file, formatRunRecord(record), mode);
  const history = runHistoryFile(file);
  const previous = await readJsonIfExists(history).catch(() => undefined);
  await writeFileAtomic(history, `${JSON.stringify(nextRunHistory(previous, record))}\n`, mode);
}
