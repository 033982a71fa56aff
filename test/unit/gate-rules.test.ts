import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_GATE_REQUEST_BYTES,
  parseGateRequest,
  rsyncServerArgv,
  type GateRequest,
  type RsyncPullRequest,
} from '../../src/core/gate-rules.js';

const ID = '2026-11-28T061922Z';
const HASH = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);
/** What baton's own pull makes an rsync 3.2.7 or 3.5.0 client send (captured, see gate-rules.ts). */
const PULL = `rsync --server --sender -ltpre.iLsfxCIvu --timeout=30 --numeric-ids . ${ID}/`;
const PULLED: RsyncPullRequest = {
  flags: 'rltp',
  capabilities: 'iLsfxCIvu',
  timeoutSeconds: 30,
  numericIds: true,
  inplace: false,
  generation: ID,
};
const pull = (over: Partial<RsyncPullRequest> = {}): GateRequest => ({
  kind: 'rsync',
  pull: { ...PULLED, ...over },
});

const allowed: Array<{ name: string; input: string; expected: GateRequest }> = [
  { name: 'list -> list', input: 'list', expected: { kind: 'list' } },
  { name: 'list-head -> list-head', input: 'list-head', expected: { kind: 'list-head' } },
  {
    name: 'ack with id and lowercase hash -> ack',
    input: `ack ${ID} ${HASH}`,
    expected: { kind: 'ack', id: ID, manifestSha256: HASH },
  },
  {
    name: 'reject with id and lowercase hash -> reject',
    input: `reject ${ID} ${HASH}`,
    expected: { kind: 'reject', id: ID, manifestSha256: HASH },
  },
  {
    name: "baton's pull (3.2.7 / 3.5.0 client) -> rsync pull of the generation",
    input: PULL,
    expected: pull(),
  },
  {
    name: "baton's pull with -H (hard links) -> rsync pull with H",
    input: `rsync --server --sender -lHtpre.iLsfxCIvu --timeout=30 --numeric-ids . ${ID}/`,
    expected: pull({ flags: 'rltpH' }),
  },
  {
    name: "baton's in-place pull (storeMode reflink) -> rsync pull with inplace",
    input: `rsync --server --sender -ltpre.iLsfxCIvu --timeout=600 --numeric-ids --inplace . ${ID}/`,
    expected: pull({ timeoutSeconds: 600, inplace: true }),
  },
  {
    name: 'pull with --no-inc-recursive (progress shown) -> rsync pull without capability i',
    input: `rsync --server --sender -ltpre.LsfxCIvu --timeout=30 --numeric-ids . ${ID}/`,
    expected: pull({ capabilities: 'LsfxCIvu' }),
  },
  {
    name: "baton's pull with the source's bwlimit (3.2.7 / 3.5.0 client: --bwlimit=KiB) -> rsync pull with bwlimitKiB",
    input: `rsync --server --sender -lHtpre.iLsfxCIvu --timeout=60 --bwlimit=1024 --numeric-ids . ${ID}/`,
    expected: pull({ flags: 'rltpH', timeoutSeconds: 60, bwlimitKiB: 1024 }),
  },
  {
    name: 'long options in another order and no timeout -> rsync pull',
    input: `rsync --server --sender -rlte. --inplace --numeric-ids . ${ID}/`,
    expected: pull({ flags: 'rlt', capabilities: '', timeoutSeconds: undefined, inplace: true }),
  },
];

for (const row of allowed) {
  test(row.name, () => {
    assert.deepEqual(parseGateRequest(row.input), row.expected);
  });
}

const refused: Array<{ name: string; input: string | undefined; reason: RegExp }> = [
  { name: 'no command (interactive login) -> refused', input: undefined, reason: /no command/ },
  { name: 'empty command -> refused', input: '', reason: /no command/ },
  {
    name: 'a shell command after list -> refused',
    input: 'list; rm -rf /',
    reason: /not an allowed command/,
  },
  { name: 'command substitution -> refused', input: '$(reboot)', reason: /not an allowed command/ },
  { name: 'backticks -> refused', input: '`reboot`', reason: /not an allowed command/ },
  { name: 'a shell -> refused', input: 'sh -c id', reason: /not an allowed command/ },
  { name: 'list with an argument -> refused', input: 'list all', reason: /not an allowed command/ },
  {
    name: 'list-head with an argument -> refused',
    input: 'list-head ../x',
    reason: /not an allowed command/,
  },
  {
    name: 'list-head of a named generation -> refused',
    input: 'list-head 2026-11-28T061922Z',
    reason: /not an allowed command/,
  },
  { name: 'uppercase LIST -> refused', input: 'LIST', reason: /not an allowed command/ },
  { name: 'leading space -> refused', input: ' list', reason: /not an allowed command/ },
  { name: 'trailing space -> refused', input: 'list ', reason: /not an allowed command/ },
  { name: 'leading spaces before rsync -> refused', input: `  ${PULL}`, reason: /not an allowed command/ },
  {
    name: 'reject with a path instead of an id -> refused',
    input: `reject ../x ${HASH}`,
    reason: /no valid generation id/,
  },
  { name: 'reject without a hash -> refused', input: `reject ${ID}`, reason: /expected "reject/ },
  {
    name: 'ack with a path instead of an id -> refused',
    input: `ack ../x ${HASH}`,
    reason: /no valid generation id/,
  },
  {
    name: 'ack with an absolute path -> refused',
    input: `ack /etc ${HASH}`,
    reason: /no valid generation id/,
  },
  {
    name: 'ack of a work dir name -> refused',
    input: `ack .${ID} ${HASH}`,
    reason: /no valid generation id/,
  },
  {
    name: 'ack of an impossible date -> refused',
    input: `ack 2026-02-30T061922Z ${HASH}`,
    reason: /no valid generation id/,
  },
  {
    name: 'ack with uppercase hex -> refused',
    input: `ack ${ID} ${HASH.toUpperCase()}`,
    reason: /expected "ack/,
  },
  { name: 'ack with a short hash -> refused', input: `ack ${ID} ${HASH.slice(1)}`, reason: /expected "ack/ },
  { name: 'ack with a long hash -> refused', input: `ack ${ID} ${HASH}0`, reason: /expected "ack/ },
  { name: 'ack with non-hex -> refused', input: `ack ${ID} ${'g'.repeat(64)}`, reason: /expected "ack/ },
  { name: 'ack with double space -> refused', input: `ack  ${ID} ${HASH}`, reason: /expected "ack/ },
  { name: 'ack with a third argument -> refused', input: `ack ${ID} ${HASH} x`, reason: /expected "ack/ },
  { name: 'ack without a hash -> refused', input: `ack ${ID}`, reason: /expected "ack/ },
  { name: 'bare ack -> refused', input: 'ack', reason: /not an allowed command/ },
  {
    name: 'ack then a newline and list -> refused',
    input: `ack ${ID} ${HASH}\nlist`,
    reason: /control character/,
  },
  { name: 'list then newline -> refused', input: 'list\n', reason: /control character/ },
  { name: 'carriage return -> refused', input: 'list\r', reason: /control character/ },
  { name: 'NUL byte -> refused', input: 'list\0', reason: /control character/ },
  { name: 'tab separator -> refused', input: `ack\t${ID} ${HASH}`, reason: /control character/ },
  { name: 'escape sequence -> refused', input: 'list\u001b[2J', reason: /control character/ },
  { name: 'DEL -> refused', input: 'list\u007f', reason: /control character/ },
  { name: 'C1 control -> refused', input: `${PULL}\u0085`, reason: /control character/ },
  {
    name: 'newline inside an rsync pull -> refused',
    input: `${PULL}\nrm -rf /`,
    reason: /control character/,
  },
  { name: 'invalid UTF-8 (replacement char) -> refused', input: `${PULL}\ufffd`, reason: /UTF-8/ },
  // The rsync allow-list: everything baton's pull does not send, on every rsync version.
  ...[
    ['-L (copy links)', `-Lltpre.iLsfxCIvu . ${ID}/`, /option -L is not allowed/],
    ['-k (copy dirlinks)', `-kltpre.iLsfxCIvu . ${ID}/`, /option -k is not allowed/],
    ['-K (keep dirlinks)', `-Kltpre.iLsfxCIvu . ${ID}/`, /option -K is not allowed/],
    ['-a expanded (owners, groups, devices)', `-logDtpre.iLsfxCIvu . ${ID}/`, /option -o is not allowed/],
    ['-s (arguments over the protocol)', `-sltpre.iLsfxCIvu . `, /option -s is not allowed/],
    ['a letter twice', `-lltpre.iLsfxCIvu . ${ID}/`, /given twice/],
    ['an unknown capability', `-ltpre.iLsfxCIvuZ . ${ID}/`, /capability -Z/],
    ['no option group', `. ${ID}/`, /option group/],
    ['an option group without e.', `-ltpr . ${ID}/`, /option group/],
    ['--copy-unsafe-links', `-ltpre.iLsfxCIvu --copy-unsafe-links . ${ID}/`, /--copy-unsafe-links/],
    ['--copy-links', `-ltpre.iLsfxCIvu --copy-links . ${ID}/`, /--copy-links/],
    ['--copy-dirlinks', `-ltpre.iLsfxCIvu --copy-dirlinks . ${ID}/`, /--copy-dirlinks/],
    ['--files-from', `-ltpre.iLsfxCIvu --files-from=/etc/passwd . ${ID}/`, /--files-from/],
    ['--files-from as two words', `-ltpre.iLsfxCIvu --files-from - . ${ID}/`, /--files-from/],
    ['--include-from', `-ltpre.iLsfxCIvu --include-from=/etc/x . ${ID}/`, /--include-from/],
    ['--exclude-from', `-ltpre.iLsfxCIvu --exclude-from=/etc/x . ${ID}/`, /--exclude-from/],
    ['--log-file', `-ltpre.iLsfxCIvu --log-file=/tmp/x . ${ID}/`, /--log-file/],
    ['--remove-source-files', `-ltpre.iLsfxCIvu --remove-source-files . ${ID}/`, /--remove-source-files/],
    ['--temp-dir', `-ltpre.iLsfxCIvu --temp-dir=/tmp . ${ID}/`, /--temp-dir/],
    ['--daemon', `-ltpre.iLsfxCIvu --daemon . ${ID}/`, /--daemon/],
    ['--timeout=0 (none)', `-ltpre.iLsfxCIvu --timeout=0 . ${ID}/`, /--timeout=0/],
    ['--timeout above a week', `-ltpre.iLsfxCIvu --timeout=999999999 . ${ID}/`, /--timeout above/],
    ['--timeout twice', `-ltpre.iLsfxCIvu --timeout=5 --timeout=9 . ${ID}/`, /--timeout=9/],
    ['--bwlimit=0 (none)', `-ltpre.iLsfxCIvu --bwlimit=0 . ${ID}/`, /--bwlimit=0/],
    ['--bwlimit with a unit', `-ltpre.iLsfxCIvu --bwlimit=1M . ${ID}/`, /--bwlimit=1M/],
    ['--bwlimit as two words', `-ltpre.iLsfxCIvu --bwlimit 1024 . ${ID}/`, /--bwlimit/],
    ['--bwlimit above 1 TiB/s', `-ltpre.iLsfxCIvu --bwlimit=9999999999999 . ${ID}/`, /--bwlimit above/],
    ['--bwlimit twice', `-ltpre.iLsfxCIvu --bwlimit=5 --bwlimit=9 . ${ID}/`, /--bwlimit=9/],
    ['--numeric-ids twice', `-ltpre.iLsfxCIvu --numeric-ids --numeric-ids . ${ID}/`, /--numeric-ids/],
    ['an option after the paths', `-ltpre.iLsfxCIvu . ${ID}/ --copy-links`, /exactly one path/],
    ['no "." before the path', `-ltpre.iLsfxCIvu ${ID}/`, /expected "\."/],
    ['two paths', `-ltpre.iLsfxCIvu . ${ID}/ ${ID}/`, /exactly one path/],
    ['no path', `-ltpre.iLsfxCIvu .`, /exactly one path/],
    ['the whole handover', `-ltpre.iLsfxCIvu . .`, /generation id/],
    ['../', `-ltpre.iLsfxCIvu . ../`, /generation id/],
    ['an id/../..', `-ltpre.iLsfxCIvu . ${ID}/../../`, /generation id/],
    ['an absolute path', `-ltpre.iLsfxCIvu . /etc/`, /generation id/],
    ['a path inside the generation', `-ltpre.iLsfxCIvu . ${ID}/tree/`, /generation id/],
    ['the id without a slash', `-ltpre.iLsfxCIvu . ${ID}`, /generation id/],
    ['a work dir', `-ltpre.iLsfxCIvu . .${ID}/`, /generation id/],
    ['an escaped space', `-ltpre.iLsfxCIvu . ${ID}\\ x/`, /exactly one path/],
    ['two spaces', `-ltpre.iLsfxCIvu  . ${ID}/`, /expected "\."|not allowed/],
  ].map(([what, rest, reason]) => ({
    name: `rsync pull with ${String(what)} -> refused`,
    input: `rsync --server --sender ${String(rest)}`,
    reason: reason as RegExp,
  })),
  {
    name: 'rsync push (no --sender) -> refused',
    input: `rsync --server -logDtpre.iLsfxCIvu . ${ID}/`,
    reason: /read-only rsync/,
  },
  { name: 'rsync --server . (upload) -> refused', input: 'rsync --server .', reason: /read-only rsync/ },
  {
    name: 'rsync with --sender not second -> refused',
    input: `rsync --server -v --sender . ${ID}/`,
    reason: /read-only rsync/,
  },
  {
    name: 'rsync without --server -> refused',
    input: 'rsync --sender /etc/shadow',
    reason: /read-only rsync/,
  },
  {
    name: 'rsync --server --sender with nothing after -> refused',
    input: 'rsync --server --sender',
    reason: /read-only rsync/,
  },
  {
    name: 'another rsync binary path -> refused',
    input: `/usr/bin/rsync --server --sender . ${ID}/`,
    reason: /not an allowed command/,
  },
  { name: 'scp -> refused', input: 'scp -f /etc/shadow', reason: /not an allowed command/ },
  { name: 'sftp subsystem -> refused', input: 'internal-sftp', reason: /not an allowed command/ },
  {
    name: 'input longer than the byte limit -> refused',
    input: `rsync --server --sender ${'x'.repeat(MAX_GATE_REQUEST_BYTES)}`,
    reason: /longer than/,
  },
  {
    name: 'multi-byte input over the byte limit but not the char limit -> refused',
    input: `rsync --server --sender ${'é'.repeat(2100)}`,
    reason: /longer than/,
  },
  { name: 'very long list -> refused', input: 'list'.repeat(100_000), reason: /longer than/ },
];

for (const row of refused) {
  test(row.name, () => {
    const r = parseGateRequest(row.input);
    assert.equal(r.kind, 'refused');
    assert.match(r.kind === 'refused' ? r.reason : '', row.reason);
  });
}

test('rsyncServerArgv of a parsed pull -> the same words, which parse to the same pull', () => {
  const r = parseGateRequest(PULL);
  assert.equal(r.kind, 'rsync');
  const argv = rsyncServerArgv(r.kind === 'rsync' ? r.pull : PULLED);
  assert.deepEqual(argv, [
    '--server',
    '--sender',
    '-rltpe.iLsfxCIvu',
    '--timeout=30',
    '--numeric-ids',
    '.',
    `${ID}/`,
  ]);
  assert.deepEqual(parseGateRequest(`rsync ${argv.join(' ')}`), r);
});

test('rsyncServerArgv keeps a bwlimit, and the rebuilt words parse to the same pull', () => {
  const r = parseGateRequest(
    `rsync --server --sender -ltpre.iLsfxCIvu --bwlimit=512 --timeout=30 --numeric-ids . ${ID}/`,
  );
  assert.equal(r.kind, 'rsync');
  const argv = rsyncServerArgv(r.kind === 'rsync' ? r.pull : PULLED);
  assert.ok(argv.includes('--bwlimit=512'));
  assert.deepEqual(parseGateRequest(`rsync ${argv.join(' ')}`), r);
});
