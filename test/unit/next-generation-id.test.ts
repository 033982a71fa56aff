/**
 * The new generation id: this second or one after the newest taken one, in constant time; refused
 * when a stored id lies far ahead of the clock (issue 10, hole 14).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatGenerationId, isGenerationId, parseGenerationId } from '../../src/generation/names.js';
import { MAX_ID_SKEW_MS, nextGenerationId } from '../../src/core/next-generation-id.js';

const now = new Date('2026-12-07T12:00:00.750Z');

test('no ids yet: the id is this second', () => {
  assert.deepEqual(nextGenerationId(now, []), { ok: true, id: '2026-12-07T120000Z' });
});

test('a rerun within the same second gets the next second', () => {
  assert.deepEqual(nextGenerationId(now, ['2026-12-07T120000Z', '2026-12-06T120000Z']), {
    ok: true,
    id: '2026-12-07T120001Z',
  });
});

test('older ids do not change the id', () => {
  assert.deepEqual(nextGenerationId(now, ['2026-12-01T000000Z']), { ok: true, id: '2026-12-07T120000Z' });
});

test('a newest id a few minutes ahead (clock stepped back a little): one second after it', () => {
  assert.deepEqual(nextGenerationId(now, ['2026-12-07T120500Z']), { ok: true, id: '2026-12-07T120501Z' });
});

test('an id more than the skew ahead is refused, with how far ahead', () => {
  const r = nextGenerationId(now, ['2026-12-07T110000Z', '2099-01-01T000000Z']);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.latest === '2099-01-01T000000Z');
  assert.ok(!r.ok && r.aheadMs === Date.parse('2099-01-01T00:00:00Z') - now.getTime());
});

test('exactly at the skew is still accepted, one second beyond is refused', () => {
  const at = (ms: number) => formatGenerationId(new Date(Date.parse('2026-12-07T12:00:00Z') + ms));
  const zero = new Date('2026-12-07T12:00:00Z');
  assert.equal(nextGenerationId(zero, [at(MAX_ID_SKEW_MS)]).ok, true);
  assert.equal(nextGenerationId(zero, [at(MAX_ID_SKEW_MS + 1000)]).ok, false);
});

test('the largest id has no successor: refused, never a malformed id', () => {
  const r = nextGenerationId(new Date('9999-12-31T23:59:59Z'), ['9999-12-31T235959Z']);
  assert.equal(r.ok, false);
});

test('malformed names in the taken set are ignored', () => {
  assert.deepEqual(nextGenerationId(now, ['9999-99-99T999999Z', 'junk', '']), {
    ok: true,
    id: '2026-12-07T120000Z',
  });
});

test('with a wide skew, an id far ahead still gets its successor directly', () => {
  assert.deepEqual(nextGenerationId(now, ['2099-12-31T235959Z'], Number.MAX_SAFE_INTEGER), {
    ok: true,
    id: '2100-01-01T000000Z',
  });
});

const date = fc.date({
  min: new Date('2000-01-01T00:00:00Z'),
  max: new Date('2100-01-01T00:00:00Z'),
  noInvalidDate: true,
});

test('property: the id is well formed, newer than every taken id, not before this second; or refused only when an id is more than the skew ahead', () => {
  fc.assert(
    fc.property(
      date,
      fc.array(
        fc.oneof(
          date,
          date.map((d) => new Date(d.getTime() % 3_600_000)),
        ),
        { maxLength: 20 },
      ),
      fc.array(fc.integer({ min: -3_600_000, max: 3_600_000 }), { maxLength: 5 }),
      fc.integer({ min: 0, max: 3_600_000 }),
      (clock, dates, offsets, skew) => {
        const taken = [
          ...dates.map(formatGenerationId),
          ...offsets.map((o) => formatGenerationId(new Date(clock.getTime() + o))),
        ];
        const r = nextGenerationId(clock, taken, skew);
        const newest = taken.length
          ? Math.max(...taken.map((t) => parseGenerationId(t)!.getTime()))
          : -Infinity;
        if (!r.ok) {
          assert.ok(newest - clock.getTime() > skew, 'refused only beyond the skew');
          return;
        }
        assert.ok(newest - clock.getTime() <= skew);
        assert.ok(isGenerationId(r.id));
        for (const t of taken) assert.ok(r.id > t, `${r.id} > ${t}`);
        assert.ok(r.id >= formatGenerationId(new Date(Math.floor(clock.getTime() / 1000) * 1000)));
        // no gap: either this second, or the second right after the newest
        const at = parseGenerationId(r.id)!.getTime();
        assert.ok(at === Math.floor(clock.getTime() / 1000) * 1000 || at === newest + 1000);
      },
    ),
  );
});
