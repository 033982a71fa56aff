import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  runProcess,
  spawnDialogue,
  type Dialogue,
  type DialogueLimits,
  type RunResult,
} from '../adapters/run.js';
import { controlSocketDir, sshArgv } from '../adapters/ssh.js';
import { recordChild } from '../adapters/children.js';
import type { SinkSourceConfig, SinkStreamConfig } from '../config/schema.js';

/**
 * How the sink reaches a source's gate: the remote shell rsync uses (`-e`) and a way to run
 * `list` / `ack` through the same gate. Normally ssh with a pinned host key; the demo may use a
 * local shell that runs the same gate code.
 */
export interface Transport {
  /** argv of the remote shell; rsync gets it joined as `-e` */
  rsh: readonly string[];
  /** `user@host` */
  remote: string;
  describe: string;
  /**
   * Runs a gate command (`list`, `reject …`) and returns its result; stdout is read up to
   * `maxStdoutBytes` (default GATE_REPLY_MAX_BYTES), past it the call ends with `exceeded` set;
   * with `asBytes` it comes as `stdoutBytes` (`list-head` carries a manifest).
   */
  run(command: string, timeoutMs: number, maxStdoutBytes?: number, asBytes?: boolean): Promise<RunResult>;
  /** Opens a gate command as a line dialogue over one session (`ack …`: challenge and answer). */
  dialogue(command: string, limits: DialogueLimits): Dialogue;
  /**
   * Starts a gate command with stdin, stdout and stderr as pipes, in a process group of its own
   * (the gate session, ./gate-session.ts); without it every command has a session of its own.
   */
  spawn?(command: string): ChildProcessWithoutNullStreams;
  close(): Promise<void>;
}

/** Default cap on a gate reply (a `reject` answer is one short JSON line). */
export const GATE_REPLY_MAX_BYTES = 64 * 1024;

export async function sshTransport(
  src: SinkSourceConfig,
  stream: SinkStreamConfig,
  controlDir: string,
  ioTimeoutMs: number,
): Promise<Transport> {
  const sockets = await controlSocketDir(controlDir);
  const rsh = sshArgv(src, stream, sockets, ioTimeoutMs);
  const remote = `${stream.user}@${src.host}`;
  return {
    rsh,
    remote,
    describe: `ssh ${remote} port ${src.port}`,
    run: (command, timeoutMs, maxStdoutBytes = GATE_REPLY_MAX_BYTES, asBytes = false) =>
      runProcess([...rsh, remote, command], {
        timeoutMs,
        captureStdout: true,
        maxStdoutBytes,
        stdoutAsBytes: asBytes,
      }),
    dialogue: (command, limits) => spawnDialogue([...rsh, remote, command], limits),
    spawn: (command) => spawnRecorded([...rsh, remote, command]),
    close: async () => {
      if (sockets !== undefined) await runProcess([...rsh, '-O', 'exit', remote], { timeoutMs: 10_000 });
    },
  };
}

/** `argv` with piped stdio in a process group of its own, recorded so a later run ends it if this one is killed. */
function spawnRecorded(argv: readonly string[]): ChildProcessWithoutNullStreams {
  const [file = 'ssh', ...args] = argv;
  const child = spawn(file, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  child.on('exit', recordChild(child.pid, argv));
  return child;
}
