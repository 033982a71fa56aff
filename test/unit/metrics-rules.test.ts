import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatMetrics, METRIC_HELP, planJobMetrics, type StreamRunFacts } from '../../src/core/metrics.js';

// promtool is not installed here: the rules in docs/metrics.md are checked against what baton writes.
const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
const rules = /```yaml\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('Alert rules')))?.[1] ?? '';
const exprs = [...rules.matchAll(/expr: (.*)/g)].map((m) => m[1] ?? '');

const facts: StreamRunFacts = {
  source: 'shop',
  stream: 'data',
  ran: true,
  ok: false,
  durationSeconds: 3,
  finishedAt: new Date('2026-11-28T06:20:00Z'),
  stores: [
    { store: 'handover', generations: 2, newestAt: new Date('2026-11-28T06:00:00Z') },
    { store: 'sink_store', generations: 3, newestAt: new Date('2026-11-27T06:00:00Z') },
    { store: 'offsite', generations: undefined, newestAt: new Date('2026-11-26T06:00:00Z') },
  ],
  newest: { bytes: 10, bytesNew: 5, downtimeMs: 4000 },
  extra: [{ name: 'baton_verify_failed_generations', value: 1 }],
};
const exposition = formatMetrics(
  planJobMetrics('source_backup', [facts], [], { appDowntime: true, version: '1.0.0' }),
);

/** One sample line of the text exposition format, strictly: name, optional {k="v",...}, a float. */
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/;

test('docs/metrics.md has alert rules for stale, failed and downtime too long', () => {
  assert.ok(exprs.length >= 3, rules);
  assert.ok(exprs.some((e) => e.includes('newest_generation_timestamp')));
  assert.ok(exprs.some((e) => e.includes('baton_last_run_success == 0')));
  assert.ok(exprs.some((e) => e.includes('baton_app_downtime_seconds')));
});

test('every metric and label the rules use is written by baton, in valid exposition format', () => {
  const lines = exposition.split('\n').filter((l) => l !== '');
  for (const l of lines) {
    if (l.startsWith('# HELP ') || l.startsWith('# TYPE ')) continue;
    assert.match(l, SAMPLE);
  }
  for (const e of exprs) {
    for (const m of e.matchAll(/\b(baton_[a-z_]+)(?:\{([^}]*)\})?/g)) {
      const name = m[1] ?? '';
      assert.ok(Object.hasOwn(METRIC_HELP, name), `${name} in a rule is not a baton metric`);
      assert.match(exposition, new RegExp(`^# TYPE ${name} gauge$`, 'm'));
      for (const sel of (m[2] ?? '').split(',').filter((x) => x !== '')) {
        const [label, value] = sel.split('=');
        const series = lines.filter((l) => l.startsWith(`${name}{`));
        assert.ok(
          series.some((l) => l.includes(`${label}=${value}`)),
          `no ${name} series with ${label}=${value}:\n${series.join('\n')}`,
        );
      }
    }
  }
});
