import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_GATE_REQUEST_BYTES, parseGateRequest, type GateRequest } from '../../src/core/gate-rules.js';

const ID = '2026-11-28T061922Z';
const HASH = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);
const PULL = `rsync --server --sender -logDtpre.iLsfxCIvu . ${ID}/`;

const allowed: Array<{ name: string; input: string; expected: GateRequest }> = [
  { name: 'list -> list', input: 'list', expected: { kind: 'list' } },
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
  { name: 'rsync pull (sender) -> rsync', input: PULL, expected: { kind: 'rsync' } },
  {
    name: 'rsync pull of the whole handover -> rsync',
    input: 'rsync --server --sender -vlogDtpre.iLsfxCIvu . .',
    expected: { kind: 'rsync' },
  },
  // rrsync -ro, not the parser, refuses these: the parser only guarantees a pull.
  {
    name: 'rsync pull with --remove-source-files -> rsync (rrsync -ro refuses it)',
    input: `rsync --server --sender --remove-source-files -logDtpre.iLsfxCIvu . ${ID}/`,
    expected: { kind: 'rsync' },
  },
  {
    name: 'rsync pull of ../ -> rsync (rrsync keeps paths inside)',
    input: 'rsync --server --sender -logDtpre.iLsfxCIvu . ../',
    expected: { kind: 'rsync' },
  },
  {
    name: 'input of exactly the byte limit -> accepted',
    input: `rsync --server --sender ${'x'.repeat(MAX_GATE_REQUEST_BYTES - 24)}`,
    expected: { kind: 'rsync' },
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
