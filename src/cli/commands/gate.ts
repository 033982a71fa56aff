import { writeSync } from 'node:fs';
import { Argument } from '@commander-js/extra-typings';
import { loadSourceConfig } from '../../config/load.js';
import { runGate, watchSession } from '../../gate/gate.js';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { errnoCode } from '../../errors.js';

const HELP_AFTER = `
The gate is the forced command of a stream user's ssh key: the only thing the sink may run on
this source. Put one line per stream user in its ~/.ssh/authorized_keys, e.g. for dataBackupSource:

  restrict,command="baton gate data --config /etc/baton/source.yaml" ssh-ed25519 AAAA… sink
  restrict,from="203.0.113.7",command="baton gate data --config /etc/baton/source.yaml" ssh-ed25519 AAAA…

It reads SSH_ORIGINAL_COMMAND (what the sink asked for) and allows exactly:
  rsync --server --sender …   a read-only rsync of one generation of this stream's handover: exactly
                              the options baton's pull sends and the path ID/ (a real directory)
  list                        complete generations waiting in the handover, as JSON
  list-head                   the same, then the oldest one's manifest (when at most 8 MiB), so the
                              sink's pull needs no rsync session for it
  session                     the gate then reads list, list-head, ack and reject requests one line
                              at a time and answers each in a \`reply CODE BYTES\` frame: one gate
                              process for a whole pull (the tree's rsync has its own session)
  ack ID SHA256               ID is safely on the sink (SHA256 = sha256 of its manifest). The gate
                              first challenges the sink over the same session (random byte ranges of
                              the generation's files, hashed with a nonce); only a right answer counts:
                              data moves into the source store (then pruned to streams.data.generations),
                              logs are deleted. A wrong or missing answer is refused and recorded.
  reject ID SHA256            the sink failed to verify ID: it moves to <handover>/.rejected/ID (kept,
                              at most 20; never listed again) and is recorded as a gate event
Everything else is refused, logged to stderr and syslog (auth.warning, tag baton-gate), exit 1.
Refused acks and rejects are also written to <handover>/.gate-events/ (the newest 50): the next
\`baton source backup\` mails them and \`baton status\` shows them. The gate ends with its ssh session.
The gate runs as the stream user; it needs no root, only the stream's handover (and store).

Examples:
  # what sshd runs for the sink's \`ssh dataBackupSource@source list\`:
  SSH_ORIGINAL_COMMAND=list baton gate data --config /etc/baton/source.yaml
  baton install source --sink-key-data sink-data.pub   # writes the authorized_keys lines for you`;

/** A pause for a full non-blocking pipe (the sink reads the inline manifest of `list-head` at its pace). */
const waitCell = new Int32Array(new SharedArrayBuffer(4));

function writeFd(fd: number): (data: string | Uint8Array) => void {
  return (data) => {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    // whole, even when the pipe takes part of it at a time (a write of several MiB)
    for (let off = 0; off < buf.length;) {
      try {
        off += writeSync(fd, buf, off, buf.length - off);
      } catch (e) {
        if (errnoCode(e) !== 'EAGAIN') return; // the caller hung up
        Atomics.wait(waitCell, 0, 0, 5);
      }
    }
  };
}

export function registerGateCommand(root: Root): void {
  root
    .command('gate')
    .description(
      'serve the sink over ssh: read-only rsync of a handover, list, ack, reject (ssh forced command)',
    )
    .addArgument(new Argument('<stream>', 'the stream this key may reach').choices(['data', 'logs'] as const))
    .option('--config <file>', 'source config file', DEFAULT_CONFIG.source)
    .addHelpText('after', HELP_AFTER)
    .action(async (stream, opts) => {
      // first: a config on a hung mount must not keep the gate alive after the sink gave up
      watchSession();
      await runAction(root, async (ctx) =>
        runGate({
          stream,
          config: await loadSourceConfig(opts.config),
          // sshd sets it; the one place the gate reads its environment.
          original: process.env.SSH_ORIGINAL_COMMAND,
          env: process.env,
          now: ctx.now(),
          // Synchronous writes: main.ts exits right after, and for rsync stdout is the protocol.
          stdout: writeFd(1),
          stderr: writeFd(2),
          // the sink's answer to an ack challenge; stdin is rsync's protocol otherwise, never touched
          stdin: () => process.stdin,
        }),
      );
    });
}
