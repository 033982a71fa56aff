/** How `baton install` shows a plan: one line per action, file contents for --print, notes. Pure. */
import type { Action } from './plan.js';

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;

const VERB = { create: 'create', update: 'update', none: 'ok' } as const;

/** `create  dir   /var/lib/baton/handover/data  0750 dataBackupSource  (data handover)`; undefined for a note. */
export function describeAction(a: Action): string | undefined {
  switch (a.type) {
    case 'print':
      return undefined;
    case 'user':
      return `${VERB[a.change].padEnd(7)} user  ${a.name}  (${a.detail})`;
    case 'dir':
      return `${VERB[a.change].padEnd(7)} dir   ${a.path}  ${octal(a.mode)} ${a.owner}  (${a.detail})`;
    case 'file':
      return `${VERB[a.change].padEnd(7)} file  ${a.path}  ${octal(a.mode)} ${a.owner}  (${a.detail})`;
    case 'keypair':
      return `${VERB[a.change].padEnd(7)} key   ${a.path}  (${a.detail})`;
  }
}

/** Every file the plan writes, with its content, for `--print`. */
export function renderContents(actions: readonly Action[]): string {
  return actions
    .flatMap((a) =>
      a.type === 'file'
        ? [
            `--- ${a.path} (${octal(a.mode)} ${a.owner}${a.change === 'none' ? ', as installed' : ''})\n${a.content}`,
          ]
        : [],
    )
    .join('\n');
}

export function renderNotes(actions: readonly Action[]): string {
  return actions.flatMap((a) => (a.type === 'print' ? [`${a.text}\n`] : [])).join('\n');
}

export function countChanges(actions: readonly Action[]): number {
  return actions.filter((a) => a.type !== 'print' && a.change !== 'none').length;
}
