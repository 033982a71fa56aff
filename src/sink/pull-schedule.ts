import type { SinkConfig, SinkSourceConfig, StreamName } from '../config/schema.js';
import { inPullWindow, localMinuteOfDay, orderPulls } from '../core/pull-order.js';
import { listGenerations } from '../generation/list.js';
import { sinkPaths } from './state.js';

/**
 * The sources of a pull in the order their pulls start: `priority` (higher first), then the oldest
 * last success, taken as the newest generation this sink holds of the stream (a source with none
 * goes first), then the configured order. `run` gets them in that order; its results come back in
 * the configured order.
 */
export async function schedulePulls<R extends { source: string }>(
  config: SinkConfig,
  sources: readonly SinkSourceConfig[],
  stream: StreamName,
  run: (ordered: SinkSourceConfig[]) => Promise<R[]>,
): Promise<R[]> {
  const known = await Promise.all(
    sources.map(async (src) => ({
      src,
      priority: src.priority,
      lastSuccess: (await listGenerations(sinkPaths(config, src.name, stream).streamDir).catch(() => [])).at(
        -1,
      )?.createdAt,
    })),
  );
  const results = await run(orderPulls(known).map((k) => k.src));
  // results back in the configured order (the CLI's lines and the JSON stay where operators expect them)
  const rank = new Map(sources.map((s, i) => [s.name, i]));
  return [...results].sort((a, b) => (rank.get(a.source) ?? 0) - (rank.get(b.source) ?? 0));
}

/** Why `src` is not pulled at `now` (outside its `window:`, local time), else undefined. */
export function outsideWindow(src: Pick<SinkSourceConfig, 'window'>, now: Date): string | undefined {
  if (src.window === undefined || inPullWindow(src.window, localMinuteOfDay(now))) return undefined;
  return `outside its pull window ${src.window} (local time): waiting, not pulled this run`;
}
