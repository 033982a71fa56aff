import { join } from 'node:path';
import type { StreamName } from '../config/schema.js';
import { JobError } from '../errors.js';
import { runProcess } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import { mkdirp } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { joinRsh, type Transport } from './transport.js';

export interface PullInput {
  transport: Transport;
  id: string;
  /** `.incoming` of the stream in the sink store; the generation lands in `<incoming>/<id>` */
  incoming: string;
  /** newest verified generation in the sink store: unchanged files become hard links to it */
  linkDest: string | undefined;
  ioTimeoutMs: number;
  stream: StreamName;
  log: Logger;
  signal?: AbortSignal;
}

/** rsync argv that pulls one generation through the gate (the gate's rrsync -ro serves the handover). */
export function pullArgv(
  input: Pick<PullInput, 'transport' | 'id' | 'incoming' | 'linkDest' | 'ioTimeoutMs'>,
): string[] {
  return [
    'rsync',
    // recursive, links as links, perms and mtimes; no owners (the sink store belongs to the sink), no devices
    '-rlpt',
    '--delete',
    '--numeric-ids',
    '--partial',
    `--timeout=${Math.max(1, Math.round(input.ioTimeoutMs / 1000))}`,
    ...(input.linkDest ? [`--link-dest=${input.linkDest}`] : []),
    '-e',
    joinRsh(input.transport.rsh),
    '--',
    `${input.transport.remote}:${input.id}/`,
    `${join(input.incoming, input.id)}/`,
  ];
}

/**
 * Step 2.a / 3.a: rsync one generation into `.incoming/<id>`. An interrupted pull leaves the
 * directory behind; the next run resumes into it (rsync only fetches what is missing or differs).
 */
export async function pullGeneration(input: PullInput): Promise<{ ms: number }> {
  await mkdirp(input.incoming, 0o700);
  const argv = pullArgv(input);
  input.log.info(
    { step: 'pull', stream: input.stream, id: input.id, linkDest: input.linkDest },
    `pulling ${input.id}`,
  );
  const r = await runProcess(argv, { env: rsyncEnv(), tailBytes: 16 * 1024, signal: input.signal });
  const problem = describeRsyncResult(r);
  if (problem)
    throw new JobError(`pulling ${input.stream} ${input.id} over ${input.transport.describe}: ${problem}`, {
      step: 'pull',
    });
  return { ms: r.durationMs };
}
