import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyEntry,
  invertNameMap,
  isSameOrBelow,
  parseDeviceNumbers,
  parseTreePath,
  resolveOwner,
  showPath,
  undoCommands,
} from '../../src/core/restore-plan.js';

const b = (s: string) => Buffer.from(s, 'latin1');

test('parseTreePath: leading and trailing slashes are dropped -> the tree-relative path', () => {
  for (const [input, want] of [
    ['srv/shop/data/uploads', 'srv/shop/data/uploads'],
    ['/srv/shop/data/uploads/', 'srv/shop/data/uploads'],
    ['//etc//', 'etc'],
  ] as const) {
    const r = parseTreePath(input);
    assert.ok(r.ok, input);
    assert.equal(r.path.toString(), want);
  }
});

test('parseTreePath: paths that leave tree/ or name all of it -> rejected with the reason', () => {
  for (const [input, reason] of [
    ['', /whole tree/],
    ['/', /whole tree/],
    ['srv/../etc', /"\." or "\.\."/],
    ['./srv', /"\." or "\.\."/],
    ['srv//shop', /empty path component/],
  ] as const) {
    const r = parseTreePath(input);
    assert.equal(r.ok, false, input);
    if (!r.ok) assert.match(r.error, reason, input);
  }
});

test('classifyEntry: entries relative to the subtree srv/shop -> ancestor, inside, before or after', () => {
  const sub = b('srv/shop');
  const rows: Array<[string, ReturnType<typeof classifyEntry>]> = [
    ['srv', 'ancestor'],
    ['srv/shop', 'inside'],
    ['srv/shop/data/x', 'inside'],
    ['etc', 'before'],
    ['srv/a', 'before'],
    ['srv/shop-old', 'after'], // a sibling with the same prefix is not inside
    ['srv/shopping', 'after'],
    ['var', 'after'],
  ];
  for (const [path, want] of rows) assert.equal(classifyEntry(b(path), sub), want, path);
  assert.equal(classifyEntry(b('anything/at/all'), undefined), 'inside');
});

test('classifyEntry: "after" is only said once no later entry (tree order) can be inside', () => {
  // `/` sorts before every other byte in tree order: srv/shop/… comes before srv/shop-old
  const sub = b('srv/shop');
  assert.equal(classifyEntry(b('srv/shop!'), sub), 'after');
  assert.equal(classifyEntry(b('srv/sho'), sub), 'before');
});

test('isSameOrBelow compares whole components', () => {
  assert.equal(isSameOrBelow(b('a/b'), b('a')), true);
  assert.equal(isSameOrBelow(b('a'), b('a')), true);
  assert.equal(isSameOrBelow(b('ab'), b('a')), false);
  assert.equal(isSameOrBelow(b('a'), b('a/b')), false);
});

test('resolveOwner: a recorded name that exists here wins over the recorded id', () => {
  const ids = { users: new Map([['www-data', 33]]), groups: new Map([['www-data', 33]]) };
  assert.deepEqual(resolveOwner({ uid: 1001, gid: 1002, user: 'www-data', group: 'www-data' }, ids), {
    uid: 33,
    gid: 33,
  });
});

test('resolveOwner: a name unknown here, or no name -> the numeric id', () => {
  const ids = { users: new Map([['root', 0]]), groups: new Map([['root', 0]]) };
  assert.deepEqual(resolveOwner({ uid: 4242, gid: 4243, user: 'gone', group: undefined }, ids), {
    uid: 4242,
    gid: 4243,
  });
  assert.deepEqual(resolveOwner({ uid: 5, gid: 0, user: undefined, group: 'root' }, ids), { uid: 5, gid: 0 });
});

test('invertNameMap: name -> first id', () => {
  const m = invertNameMap(
    new Map([
      [0, 'root'],
      [1000, 'alice'],
      [1001, 'alice'],
    ]),
  );
  assert.equal(m.get('root'), 0);
  assert.equal(m.get('alice'), 1000);
});

test('parseDeviceNumbers: major:minor -> numbers; garbage -> undefined', () => {
  assert.deepEqual(parseDeviceNumbers(b('1:3')), { major: 1, minor: 3 });
  assert.deepEqual(parseDeviceNumbers(b('259:65536')), { major: 259, minor: 65536 });
  assert.equal(parseDeviceNumbers(b('1:')), undefined);
  assert.equal(parseDeviceNumbers(undefined), undefined);
});

test('undoCommands: directories synced back with --delete, files copied back, new paths removed', () => {
  assert.deepEqual(
    undoCommands('/var/lib/baton/state/restore-safety/2026-11-28T061922Z/', [
      { path: '/srv/shop/data', before: 'dir' },
      { path: '/etc/shop.conf', before: 'other' },
      { path: '/srv/new', before: 'missing' },
    ]),
    [
      [
        'rsync',
        '-aH',
        '--modify-window=-1',
        '--delete',
        '--numeric-ids',
        '/var/lib/baton/state/restore-safety/2026-11-28T061922Z/srv/shop/data/',
        '/srv/shop/data/',
      ],
      [
        'rsync',
        '-aH',
        '--modify-window=-1',
        '--numeric-ids',
        '/var/lib/baton/state/restore-safety/2026-11-28T061922Z/etc/shop.conf',
        '/etc/shop.conf',
      ],
      ['rm', '-rf', '--', '/srv/new'],
    ],
  );
});

test('showPath: newlines escaped, invalid UTF-8 shown as replacement characters', () => {
  assert.equal(showPath(b('a\nb')), 'a\\nb');
  assert.equal(showPath(b('caf\xe9')), 'caf\uFFFD');
});
