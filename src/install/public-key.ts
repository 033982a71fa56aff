/**
 * OpenSSH public key lines as the operator hands them to `baton install source` (`--sink-key-data`,
 * `--ca-key`): parsed and checked before anything is installed. Pure.
 */

const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

export type ParsedPublicKey = { ok: true; line: string; type: string } | { ok: false; error: string };

/**
 * Given the text of a `.pub` file, returns its one key as `TYPE BASE64 [COMMENT]` (comment stripped of
 * control characters), or why it is not a usable plain public key: no key, several keys, options in
 * front (`restrict,…`), a certificate, an unknown type, or a blob that does not encode its own type.
 */
export function parsePublicKey(text: string): ParsedPublicKey {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) return { ok: false, error: 'no public key in it' };
  if (lines.length > 1) return { ok: false, error: `${lines.length} lines; expected exactly one public key` };
  const [type = '', blob = '', ...rest] = (lines[0] ?? '').split(/\s+/);
  if (type.endsWith('-cert-v01@openssh.com')) {
    return { ok: false, error: 'this is a certificate; give the public key (KEY.pub), not KEY-cert.pub' };
  }
  if (!KEY_TYPES.has(type)) {
    return {
      ok: false,
      error: `"${type.slice(0, 40)}" is not a public key type (expected e.g. ssh-ed25519 AAAA…; no options in front)`,
    };
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return { ok: false, error: 'the key is not base64' };
  // The blob starts with its own type as an SSH string (uint32 length + bytes): a pasted key that was
  // cut or glued to another one fails here rather than in sshd's log.
  const raw = Buffer.from(blob, 'base64');
  const len = raw.length >= 4 ? raw.readUInt32BE(0) : -1;
  if (len !== type.length || raw.subarray(4, 4 + len).toString('latin1') !== type) {
    return { ok: false, error: `the key data does not encode a ${type} key (cut or damaged?)` };
  }
  const comment = rest
    .join(' ')
    .replace(/[^\x20-\x7e]/g, '')
    .trim();
  return { ok: true, line: comment ? `${type} ${blob} ${comment}` : `${type} ${blob}`, type };
}
