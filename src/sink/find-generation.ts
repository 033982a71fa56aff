import { join } from 'node:path';
import { BatonError, ExitCode } from '../errors.js';
import { NAME_PATTERN, STREAMS, type StreamName } from '../config/schema.js';
import { isGenerationId, sortNewestFirst } from '../generation/names.js';
import { listGenerations } from '../generation/list.js';
import { listBadMarks } from './bad-marks.js';

export interface FoundGeneration {
  source: string;
  stream: StreamName;
  id: string;
  dir: string;
}

const usage = (message: string) => new BatonError(message, { exitCode: ExitCode.usage, step: 'restore' });

/** `SOURCE/STREAM` from the command line, checked (a name, then data or logs). */
export function parseSourceStream(text: string): { source: string; stream: StreamName } {
  const [source, stream, ...rest] = text.split('/');
  if (source === undefined || !NAME_PATTERN.test(source) || rest.length > 0)
    throw usage(`expected SOURCE/STREAM like shop-prod/data, got ${JSON.stringify(text)}`);
  const s = STREAMS.find((x) => x === stream);
  if (s === undefined) throw usage(`stream must be data or logs, got ${JSON.stringify(stream ?? '')}`);
  return { source, stream: s };
}

/**
 * A complete generation of `<streamDir>`: `id`, or with `latest` the newest one that is not marked
 * bad (`.bad/<id>`) and not dated more than `futureAfter` (a planted or skewed id is never "latest").
 * Usage errors (exit 2) name what exists.
 */
export async function findStoredGeneration(
  streamDir: string,
  where: { source: string; stream: StreamName },
  id: string,
  futureAfter: Date,
): Promise<FoundGeneration> {
  if (id !== 'latest' && !isGenerationId(id))
    throw usage(`expected a generation id like 2026-11-28T061922Z or latest, got ${JSON.stringify(id)}`);
  const gens = await listGenerations(streamDir);
  const what = `${where.source}/${where.stream}`;
  if (id !== 'latest') {
    const g = gens.find((x) => x.id === id);
    if (g === undefined)
      throw usage(`no generation ${id} of ${what} in ${streamDir} (newest: ${gens.at(-1)?.id ?? 'none'})`);
    return { ...where, id, dir: g.dir };
  }
  const bad = await listBadMarks(streamDir);
  const usable = sortNewestFirst(
    gens.filter((g) => !bad.has(g.id) && g.createdAt.getTime() <= futureAfter.getTime()).map((g) => g.id),
  );
  const [newest] = usable;
  if (newest === undefined)
    throw usage(
      `no usable generation of ${what} in ${streamDir} (${gens.length} listed, none verified and dated in the past)`,
    );
  return { ...where, id: newest, dir: join(streamDir, newest) };
}
