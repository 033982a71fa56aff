/**
 * A real (fake) app server for end-to-end tests: a small Node process that keeps writing its
 * data and log files while it runs, with shell start / stop / health commands as an operator
 * would put them in source.yaml.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FakeApp {
  dir: string;
  /** `<dir>/data`: `counter.txt` is rewritten every 20 ms while the app runs; `static/` never changes. */
  dataDir: string;
  /** `<dir>/logs`: `app.log` grows every 20 ms while the app runs. */
  logDir: string;
  pidFile: string;
  /** The app's stdout / stderr. */
  outputFile: string;
  /** Starts the app in the background and returns once it is ready; exit 0 if it already runs. */
  startCmd: string;
  /** SIGTERM by pid file, waits until the process is gone; exit 0 if it was not running. */
  stopCmd: string;
  /** Exit 0 when the pid file's process is alive and `<dir>/ready` exists. */
  healthCmd: string;
  isRunning(): boolean;
  /** SIGKILL (a crash: the pid file stays behind). For test cleanup. */
  kill(): void;
}

const APP_SCRIPT = `// baton test fake app: node fake-app.mjs DIR
import { appendFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const dir = process.argv[2];
const data = join(dir, 'data');
const logs = join(dir, 'logs');
mkdirSync(data, { recursive: true });
mkdirSync(logs, { recursive: true });
let n = 0;
const tick = () => {
  n++;
  writeFileSync(join(data, 'counter.txt'), n + '\\n');
  appendFileSync(join(logs, 'app.log'), new Date().toISOString() + ' tick ' + n + '\\n');
};
tick();
const pidTmp = join(dir, '.app.pid.tmp');
writeFileSync(pidTmp, process.pid + '\\n');
renameSync(pidTmp, join(dir, 'app.pid'));
writeFileSync(join(dir, 'ready'), '');
const timer = setInterval(tick, 20);
process.on('SIGTERM', () => {
  clearInterval(timer);
  rmSync(join(dir, 'ready'), { force: true });
  appendFileSync(join(logs, 'app.log'), new Date().toISOString() + ' stopped after ' + n + ' ticks\\n');
  rmSync(join(dir, 'app.pid'), { force: true });
  process.exit(0);
});
`;

/** Single-quotes a string for /bin/sh. */
function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** `alive PID`: the process exists and is not a zombie (an unreaped child still answers kill -0). */
const ALIVE_FN =
  'alive() { kill -0 "$1" 2>/dev/null && [ "$(sed -n \'s/^.*) \\(.\\).*$/\\1/p\' /proc/"$1"/stat 2>/dev/null)" != Z ]; }';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Writes the fake app into `dir` (seeding `data/static/`); does not start it. */
export function createFakeApp(dir: string): FakeApp {
  const dataDir = join(dir, 'data');
  const logDir = join(dir, 'logs');
  mkdirSync(join(dataDir, 'static'), { recursive: true });
  mkdirSync(logDir, { recursive: true });
  writeFileSync(join(dataDir, 'static', 'readme.txt'), 'fake app data that never changes\n');
  const script = join(dir, 'fake-app.mjs');
  writeFileSync(script, APP_SCRIPT, { mode: 0o644 });
  const pidFile = join(dir, 'app.pid');
  const readyFile = join(dir, 'ready');
  const outputFile = join(dir, 'app.out');
  const pid = shq(pidFile);
  const ready = shq(readyFile);

  const startCmd = [
    ALIVE_FN,
    `if [ -f ${pid} ] && alive "$(cat ${pid})"; then exit 0; fi`,
    `rm -f ${ready} ${pid}`,
    // setsid: its own session, so nothing that kills our process group (a timed-out start) takes the app along.
    `if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi`,
    `$s nohup ${shq(process.execPath)} ${shq(script)} ${shq(dir)} >>${shq(outputFile)} 2>&1 </dev/null &`,
    'i=0',
    `while [ ! -f ${ready} ]; do`,
    '  i=$((i+1))',
    `  if [ $i -gt 300 ]; then echo "fake app did not become ready; see ${outputFile}" >&2; exit 1; fi`,
    '  sleep 0.05',
    'done',
  ].join('\n');

  const stopCmd = [
    ALIVE_FN,
    `[ -f ${pid} ] || exit 0`,
    `p=$(cat ${pid})`,
    `if ! alive "$p"; then rm -f ${pid} ${ready}; exit 0; fi`,
    'kill -TERM "$p" 2>/dev/null',
    'i=0',
    'while alive "$p"; do',
    '  i=$((i+1))',
    '  if [ $i -gt 300 ]; then echo "fake app $p did not stop" >&2; exit 1; fi',
    '  sleep 0.05',
    'done',
    `rm -f ${pid} ${ready}`,
  ].join('\n');

  const healthCmd = [ALIVE_FN, `[ -f ${pid} ] && alive "$(cat ${pid})" && [ -f ${ready} ]`].join('\n');

  const readPid = (): number | undefined => {
    try {
      const n = Number(readFileSync(pidFile, 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  };

  return {
    dir,
    dataDir,
    logDir,
    pidFile,
    outputFile,
    startCmd,
    stopCmd,
    healthCmd,
    isRunning() {
      const p = readPid();
      return p !== undefined && pidAlive(p);
    },
    kill() {
      const p = readPid();
      if (p === undefined || !pidAlive(p)) return;
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    },
  };
}
