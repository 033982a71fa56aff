/** The two streams of a source: its app data and its logs (docs/design.md §1). */
export type StreamName = 'data' | 'logs';
export const STREAMS: readonly StreamName[] = ['data', 'logs'];
