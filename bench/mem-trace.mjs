/**
 * Preloaded into a baton process by bench/offsite-rss.ts (`BATON_RSS_TRACE=DIR`, NODE_OPTIONS=--import):
 * samples process.memoryUsage() every 100 ms and appends a line every second to $MEMTRACE_OUT
 * (rss, V8 heap used/total, external and ArrayBuffer memory, VmHWM, all MiB), and the maxima at exit.
 *
 * - `MEMTRACE_GC=1`: each line also forces a full GC and shows what is still live after it (`live=`,
 *   `liveExt=`): garbage vs. held memory, phase by phase (slows the run; for diagnosis only).
 * - `MEMTRACE_SNAP_MIB=N`: the first time the heap in use passes N MiB, writes a heap snapshot beside
 *   $MEMTRACE_OUT (v8.writeHeapSnapshot; open it in Chrome DevTools).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

const out = process.env.MEMTRACE_OUT;
if (out) {
  writeFileSync(out, '');
  const t0 = Date.now();
  const mib = (b) => Math.round(b / 1048576);
  const max = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  let gc;
  if (process.env.MEMTRACE_GC === '1') {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc');
  }
  const snapAt = Number(process.env.MEMTRACE_SNAP_MIB ?? 'NaN') * 1048576;
  let snapped = false;
  let last = 0;
  const tick = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(max)) max[k] = Math.max(max[k], m[k]);
    if (!snapped && m.heapUsed >= snapAt) {
      snapped = true;
      const file = writeHeapSnapshot(`${out}.${Date.now() - t0}.heapsnapshot`);
      appendFileSync(out, `SNAPSHOT ${file}\n`);
    }
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
    let live = '';
    if (gc) {
      gc();
      const a = process.memoryUsage();
      live = ` live=${mib(a.heapUsed)} liveExt=${mib(a.external)} rssAfterGc=${mib(a.rss)}`;
    }
    appendFileSync(
      out,
      `${new Date().toISOString()} t=${((now - t0) / 1000).toFixed(1)} rss=${mib(m.rss)} heapUsed=${mib(m.heapUsed)} heapTotal=${mib(m.heapTotal)} ext=${mib(m.external)} ab=${mib(m.arrayBuffers)} hwm=${Math.round(hwm / 1024)}${live}\n`,
    );
  };
  setInterval(tick, 100).unref();
  process.on('exit', () => {
    last = 0;
    tick();
    const maxima = Object.fromEntries(Object.entries(max).map(([k, v]) => [k, mib(v)]));
    appendFileSync(out, `MAX ${JSON.stringify(maxima)}\n`);
  });
}
