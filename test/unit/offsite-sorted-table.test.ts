import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatFilesMap,
  RecordError,
  parseFilesMap,
  FILES_MAP_IDS_PER_LINE,
} from '../../src/core/offsite-records.js';
import { FilesMapFile, FilesMapWriter } from '../../src/offsite/files-map-file.js';
import { LocalIndex, OVERLAY_MAX } from '../../src/offsite/local-index.js';
import { LineSorter, readLines, SortedTable, TableWriter } from '../../src/offsite/sorted-table.js';

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function withDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-sorted-'));
  try {
    return await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('sorted table: every key written is found with its value, no other key is (property)', async () => {
  await withDir(async (dir) => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(hex64, { maxLength: 400 }),
        fc.array(hex64, { maxLength: 20 }),
        async (keys, probes) => {
          const path = join(dir, 't');
          const sorted = [...keys].sort();
          const w = await TableWriter.create(path, 36, 32, 7n);
          for (const [i, k] of sorted.entries()) {
            const r = Buffer.alloc(36);
            r.write(k, 0, 32, 'hex');
            r.writeUInt32BE(i, 32);
            await w.add(r);
          }
          await w.close();
          const t = SortedTable.open(path, 36, 32, 7n);
          assert.ok(t);
          try {
            assert.equal(t.count, keys.length);
            for (const [i, k] of sorted.entries())
              assert.equal(t.get(Buffer.from(k, 'hex'))?.readUInt32BE(0), i);
            for (const p of probes)
              if (!keys.includes(p)) assert.equal(t.get(Buffer.from(p, 'hex')), undefined);
            assert.deepEqual(
              [...t.records()].map((r) => r.toString('hex', 0, 32)),
              sorted,
            );
          } finally {
            t.close();
          }
          // another tag or record size: not this table (the caller rebuilds)
          assert.equal(SortedTable.open(path, 36, 32, 8n), undefined);
          assert.equal(SortedTable.open(path, 40, 32, 7n), undefined);
        },
      ),
      { numRuns: 60 },
    );
  });
});

test('sorted table: records out of order are refused when written, and an unsorted file is not opened', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 't');
    const w = await TableWriter.create(path, 32, 32, 0n);
    await w.add(Buffer.alloc(32, 2));
    await assert.rejects(w.add(Buffer.alloc(32, 1)), /out of order/);
    await assert.rejects(w.add(Buffer.alloc(32, 2)), /out of order/);
    await w.close();
    const bytes = await readFile(path);
    await writeFile(path, Buffer.concat([bytes, Buffer.alloc(32, 1)]));
    assert.equal(SortedTable.open(path, 32, 32), undefined);
  });
});

test('external sort: the same lines as an in-memory sort, across many spilled runs (property)', async () => {
  await withDir(async (dir) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.stringMatching(/^[0-9a-f ]{0,40}$/), { maxLength: 300 }),
        fc.boolean(),
        async (lines, unique) => {
          const s = new LineSorter({ tmpDir: dir, runBytes: 500, unique });
          for (const l of lines) await s.add(l);
          const out: string[] = [];
          for await (const l of s.sorted()) out.push(l);
          const want = [...lines].sort();
          assert.deepEqual(out, unique ? [...new Set(want)] : want);
        },
      ),
      { numRuns: 60 },
    );
    assert.deepEqual(await readdir(dir), [], 'the runs are removed');
  });
});

test('readLines: a line longer than the bound is refused, a last line without newline is read', async () => {
  await withDir(async (dir) => {
    const p = join(dir, 'x');
    await writeFile(p, `ab\n${'c'.repeat(5000)}\nlast`);
    const got: string[] = [];
    await assert.rejects(async () => {
      for await (const l of readLines(p, { maxLine: 1000 })) got.push(l);
    }, /longer than 1000/);
    assert.deepEqual(got, ['ab']);
    const all: string[] = [];
    for await (const l of readLines(p)) all.push(l);
    assert.deepEqual(all, ['ab', 'c'.repeat(5000), 'last']);
  });
});

const filesMaps = fc
  .uniqueArray(
    fc.tuple(
      hex64,
      fc.oneof(
        fc.array(hex64, { minLength: 1, maxLength: 3 }),
        fc
          .constantFrom(FILES_MAP_IDS_PER_LINE, FILES_MAP_IDS_PER_LINE + 1, 2 * FILES_MAP_IDS_PER_LINE)
          .map((n) => Array.from({ length: n }, (_, i) => sha(String(i)))),
      ),
    ),
    { selector: ([s]) => s, maxLength: 40 },
  )
  .map((entries) => new Map(entries));

test('streamed files map: the writer writes exactly formatFilesMap, and the on-disk lookup finds every file (property)', async () => {
  await withDir(async (dir) => {
    await fc.assert(
      fc.asyncProperty(filesMaps, fc.array(hex64, { maxLength: 5 }), async (files, probes) => {
        const path = join(dir, 'map');
        const w = await FilesMapWriter.create(path);
        for (const s of [...files.keys()].sort()) {
          await w.add(s, files.get(s) ?? []);
          await w.add(s, ['ignored: a repeated sha256 is skipped']);
        }
        const closed = await w.close();
        await FilesMapWriter.commit(path);
        const text = await readFile(path, 'utf8');
        assert.equal(text, formatFilesMap(files));
        assert.equal(closed.size, Buffer.byteLength(text));
        assert.equal(closed.sha256, sha(text));
        assert.deepEqual(parseFilesMap(text), files);
        // the lookup the writer built, and the one rebuilt from the text alone, agree with the map
        for (const rebuild of [false, true]) {
          if (rebuild) await rm(`${path}.tbl`);
          const f = await FilesMapFile.open(path, 'map');
          try {
            assert.equal(f.files, files.size);
            for (const [s, ids] of files) assert.deepEqual(f.get(s), ids);
            for (const p of probes) if (!files.has(p)) assert.equal(f.get(p), undefined);
          } finally {
            f.close();
          }
        }
      }),
      { numRuns: 40 },
    );
  });
});

test('files map on disk: a damaged text is refused with one RecordError; a stale table is rebuilt', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'map');
    const a = sha('a');
    const b = sha('b');
    const [lo, hi] = [a, b].sort() as [string, string];
    await writeFile(path, `baton-offsite-files 1\n${hi} ${a}\n${lo} ${b}\n`);
    await assert.rejects(FilesMapFile.open(path, 'gens/x/files'), (e: unknown) => {
      assert.ok(e instanceof RecordError);
      assert.match(e.message, /^gens\/x\/files:3: not sorted/);
      return true;
    });
    await writeFile(path, `baton-offsite-files 1\n${lo} ${a}\n${hi}`);
    await assert.rejects(FilesMapFile.open(path, 'm'), /not a non-empty|without blobs|not complete/);
    await writeFile(path, `baton-offsite-files 1\n${lo} ${a}\n`);
    const f = await FilesMapFile.open(path, 'm');
    f.close();
    await appendFile(path, `${hi} ${b}\n`);
    const g = await FilesMapFile.open(path, 'm');
    try {
      assert.deepEqual(g.get(hi), [b], 'the table of the shorter text was stale: rebuilt');
    } finally {
      g.close();
    }
  });
});

test('local index: lookups survive reloads, overlay merges and a lost table; a torn log line is skipped', async () => {
  await withDir(async (dir) => {
    const packs = Array.from({ length: 5 }, (_, i) => sha(`pack${i}`));
    const ids = (p: number, n: number) => Array.from({ length: n }, (_, i) => sha(`blob ${p} ${i}`));
    const idx = await LocalIndex.load(dir);
    for (const [p, id] of packs.entries()) await idx.record(id, 0, ids(p, 300));
    // the same blob in a later pack: the first pack keeps it
    await idx.record(sha('dup pack'), 5, [ids(0, 1)[0] ?? '']);
    assert.equal(idx.packOf(ids(3, 300)[299] ?? ''), packs[3]);
    assert.equal(idx.packOf(ids(0, 1)[0] ?? ''), packs[0]);
    assert.equal(idx.has(sha('never')), false);
    await idx.save();
    idx.close();
    await appendFile(join(dir, 'blobs.idx'), `${sha('torn')} 0 ${sha('x').slice(0, 20)}`);
    for (const lose of [false, true]) {
      if (lose) await rm(join(dir, 'blobs.tbl'));
      const again = await LocalIndex.load(dir);
      try {
        for (const [p, id] of packs.entries())
          for (const b of ids(p, 300))
            assert.equal(again.packOf(b), id, `${b} after reload (lost table: ${lose})`);
        assert.equal(again.packOf(ids(0, 1)[0] ?? ''), packs[0]);
        assert.equal(again.packs.size, 6);
        assert.equal(again.has(sha('x')), false);
      } finally {
        again.close();
      }
    }
    assert.ok(OVERLAY_MAX >= 1000);
  });
});

test('local index: noteRetention keeps the pack and its blobs; ids recorded after the last save are found after a reload', async () => {
  await withDir(async (dir) => {
    const idx = await LocalIndex.load(dir);
    const p = sha('p');
    const blobs = Array.from({ length: 50 }, () => randomBytes(32).toString('hex'));
    await idx.record(p, 1, blobs);
    await idx.noteRetention(p, 99);
    idx.close(); // no save: the table is stale, the log has it all
    const again = await LocalIndex.load(dir);
    try {
      assert.equal(again.packs.get(p)?.retainUntil, 99);
      for (const b of blobs) assert.equal(again.packOf(b), p);
    } finally {
      again.close();
    }
  });
});
