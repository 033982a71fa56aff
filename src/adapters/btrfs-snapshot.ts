import { readFileSync } from 'node:fs';
import { spawnDialogue, type Dialogue } from './run.js';
import { parseProcStat } from './children.js';

/**
 * Read-only btrfs snapshots taken without a process spawn at the moment they are wanted: a small
 * python3 helper is started beforehand (while the app still runs). It opens every source subvolume
 * and target dir, checks them, flushes the filesystem (so the snapshot's own commit has little to
 * write), says `ready`, and waits. On `go` it makes each snapshot with the BTRFS_IOC_SNAP_CREATE_V2
 * ioctl and flag BTRFS_SUBVOL_RDONLY (what `btrfs subvolume snapshot -r` does), answering one line
 * each. On anything else, or when its stdin closes (baton killed), it exits without a snapshot.
 */

// struct btrfs_ioctl_vol_args_v2 (4096 bytes): s64 fd, u64 transid, u64 flags, 32 bytes of
// union, char name[4040]; _IOW(0x94, 23, that struct). BTRFS_SUBVOL_RDONLY = 1 << 1.
const HELPER = String.raw`
import ctypes, fcntl, os, select, stat, struct, sys, time
SNAP_CREATE_V2 = (1 << 30) | (4096 << 16) | (0x94 << 8) | 23
RDONLY = 1 << 1
def say(s):
    sys.stdout.write(s + "\n"); sys.stdout.flush()
def one_line(e):
    return str(e).replace("\n", " ")[:500]
jobs = []
try:
    args = sys.argv[1:]
    for i in range(0, len(args), 3):
        src, parent, name = args[i], args[i + 1], args[i + 2]
        if "/" in name or name in ("", ".", "..") or len(name.encode()) > 255:
            raise ValueError("bad snapshot name " + repr(name))
        sfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        if os.fstat(sfd).st_ino != 256:
            raise ValueError(src + " is not a btrfs subvolume root")
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.stat(name, dir_fd=pfd, follow_symlinks=False)
            raise ValueError(os.path.join(parent, name) + " already exists")
        except FileNotFoundError:
            pass
        jobs.append((sfd, pfd, name))
    if jobs:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syncfs(jobs[0][0])
        except Exception:
            os.sync()
except Exception as e:
    say("error " + one_line(e)); sys.exit(2)
try:
    # woken at once when baton says go, however busy the machine (root only; else as it is)
    os.nice(-20)
except OSError:
    pass
say("ready")
# Waits for "go", or for the end of the process named by "stop PID STARTTIME" (the app's stop
# command: the snapshot follows its exit at once, without waiting for baton to pass it on). Our
# stdin at its end (baton gone) or anything else: exit without a snapshot, whatever else is ready.
def stop_fd(words):
    try:
        pid, start = int(words[1]), words[2]
        fd = os.pidfd_open(pid)
    except (AttributeError, IndexError, ValueError, OSError):
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:
            same = f.read().rsplit(")", 1)[1].split()[19] == start
    except (OSError, IndexError):
        same = False
    if not same:
        os.close(fd)
        return None
    return fd
p = select.poll()
p.register(sys.stdin.fileno(), select.POLLIN)
pending = b""
waiting = None
go = False
while not go:
    ready = dict(p.poll())
    if sys.stdin.fileno() in ready:
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            sys.exit(0)
        pending += chunk
        while b"\n" in pending and not go:
            line, pending = pending.split(b"\n", 1)
            words = line.decode("ascii", "replace").split()
            if words == ["go"]:
                go = True
            elif len(words) == 3 and words[0] == "stop" and waiting is None:
                waiting = stop_fd(words)
                if waiting is not None:
                    p.register(waiting, select.POLLIN)
            else:
                sys.exit(0)
        continue
    if waiting is not None and waiting in ready:
        go = True
for i, (sfd, pfd, name) in enumerate(jobs):
    buf = bytearray(struct.pack("=qQQ32s4040s", sfd, 0, RDONLY, b"", name.encode()))
    t = time.monotonic()
    try:
        fcntl.ioctl(pfd, SNAP_CREATE_V2, buf)
    except OSError as e:
        say("error " + one_line(e)); sys.exit(3)
    say("done %d %d" % (i, round((time.monotonic() - t) * 1000)))
`;

export interface SnapshotJob {
  /** the subvolume to snapshot */
  source: string;
  /** the existing dir the snapshot is made in, and its name there */
  parent: string;
  name: string;
}

export interface ArmedSnapshots {
  /**
   * the app's stop command runs as `pid`: the helper makes the snapshots the moment it ends,
   * before baton itself has seen its exit (told the pid's start time, it never mistakes another
   * process for it)
   */
  afterStop(pid: number): void;
  /** makes every snapshot now (or collects the ones made after the stop); each one's ms, or a one-line Error */
  take(): Promise<number[]>;
  /** ends the helper (no snapshot if `take` was not called) and waits until it is gone */
  disarm(): Promise<void>;
}

/**
 * Starts the helper for `jobs` and waits until it is ready (sources opened and checked, the
 * filesystem flushed). Throws a one-line Error when it cannot get ready.
 */
export async function armSnapshots(jobs: readonly SnapshotJob[], timeoutMs: number): Promise<ArmedSnapshots> {
  const argv = ['python3', '-c', HELPER, ...jobs.flatMap((j) => [j.source, j.parent, j.name])];
  const d: Dialogue = spawnDialogue(argv, { timeoutMs, maxLines: jobs.length + 2, maxLineBytes: 4096 });
  let gone: Promise<void> | undefined;
  const disarm = (): Promise<void> =>
    (gone ??= d.finish().then(
      () => undefined,
      () => undefined,
    ));
  const fail = async (what: string, line: string | undefined): Promise<never> => {
    const r = await d.finish();
    const why = line?.startsWith('error ') ? line.slice(6) : (r.stderr.trim().split('\n').at(-1) ?? '');
    throw new Error(`${what}: ${why || `the python3 helper ended (exit ${r.code})`}`);
  };
  const first = await d.readLine();
  if (first !== 'ready') return fail('getting ready to snapshot', first);
  return {
    afterStop: (pid) => {
      let start: string | undefined;
      try {
        start = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.start;
      } catch {
        /* gone already: take's go does it */
      }
      if (start !== undefined) d.write(`stop ${pid} ${start}\n`);
    },
    take: async () => {
      d.write('go\n');
      const ms: number[] = [];
      for (let i = 0; i < jobs.length; i++) {
        const line = await d.readLine();
        const m = /^done ([0-9]+) ([0-9]+)$/.exec(line ?? '');
        if (!m || Number(m[1]) !== i) return fail(`snapshot -r ${jobs[i]?.source ?? ''} failed`, line);
        ms.push(Number(m[2]));
      }
      // every snapshot is made and the helper makes nothing more: its exit is awaited by disarm,
      // after the app is started again
      return ms;
    },
    disarm,
  };
}
