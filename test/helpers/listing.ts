import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';

/**
 * A listing of a tree for comparing a restore with its original: one line per entry, in sorted
 * order, with path, type, mode, uid, gid, size, mtime (ns), link count, a hard-link group label and
 * the content (sha256 of a file, target of a symlink). Group labels are normalised (`g1`, `g2`, … in
 * the order the first name of each shared inode appears), so two trees with the same links list
 * the same labels whatever their inode numbers. Directory sizes and link counts depend on the
 * filesystem and are left out (`-`). Names are JSON strings, or `hex:…` when not UTF-8.
 */
export async function treeListing(root: string): Promise<string> {
  const labels = new Map<string, string>();
  const lines: string[] = [];
  const visit = async (rel: Buffer): Promise<void> => {
    const abs = rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(`${root}/`), rel]);
    const st = await lstat(abs, { bigint: true });
    const type = st.isFile()
      ? 'f'
      : st.isDirectory()
        ? 'd'
        : st.isSymbolicLink()
          ? 'l'
          : st.isFIFO()
            ? 'p'
            : st.isSocket()
              ? 's'
              : st.isCharacterDevice()
                ? 'c'
                : 'b';
    let group = '-';
    if (type !== 'd' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      group = labels.get(key) ?? `g${labels.size + 1}`;
      labels.set(key, group);
    }
    const content =
      type === 'f'
        ? createHash('sha256')
            .update(await readFile(abs))
            .digest('hex')
            .slice(0, 16)
        : type === 'l'
          ? `-> ${showName(await readlink(abs, { encoding: 'buffer' }))}`
          : '-';
    lines.push(
      [
        rel.length === 0 ? '"."' : showName(rel),
        type,
        (st.mode & 0o7777n).toString(8).padStart(4, '0'),
        st.uid,
        st.gid,
        type === 'd' ? '-' : st.size,
        st.mtimeNs,
        type === 'd' ? '-' : `nlink=${st.nlink}`,
        group,
        content,
      ].join(' '),
    );
    if (type === 'd') {
      const names = (await readdir(abs, { encoding: 'buffer' })).sort((x, y) => Buffer.compare(x, y));
      for (const n of names) await visit(rel.length === 0 ? n : Buffer.concat([rel, Buffer.from('/'), n]));
    }
  };
  await visit(Buffer.alloc(0));
  return `${lines.join('\n')}\n`;
}

/** A name as JSON when it is UTF-8, else `hex:<bytes>` (any byte may be in a file name). */
export function showName(name: Buffer): string {
  const text = name.toString('utf8');
  return Buffer.from(text, 'utf8').equals(name) ? JSON.stringify(text) : `hex:${name.toString('hex')}`;
}

/** `diff -u` of two listings (written to files in `dir`): its output, empty when they are equal. */
export async function diffListings(
  dir: string,
  name: string,
  before: string,
  after: string,
): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const a = join(dir, `${name}.before.txt`);
  const b = join(dir, `${name}.after.txt`);
  await writeFile(a, before);
  await writeFile(b, after);
  const r = await runProcess(['diff', '-u', a, b], { captureStdout: true });
  return r.stdout;
}
