#!/usr/bin/env -S node --max-semi-space-size=4
// (the flag: see node-flags.ts; a test keeps the two in step)
import { CommanderError } from '@commander-js/extra-typings';
import { createRoot, reportError } from './app.js';

// sshd starts `baton gate …` for every list, rsync and ack of a pull: the gate loads its own command
// only (its own chunk of the bundle, scripts/bundle.mjs), not the whole CLI with the sink, the offsite
// engine and the AWS SDK. Any other first word (a global option first, too) loads every command.
const root = createRoot();
if (process.argv[2] === 'gate') (await import('./commands/gate.js')).registerGateCommand(root);
else (await import('./commands/index.js')).registerCommands(root);

try {
  await root.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander has printed its message already; map help/version to 0, usage to 2
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = reportError(undefined, err);
  }
}
// Do not wait for stray handles (an unreffed timer, a slow SMTP socket) once the job has decided.
process.exit(process.exitCode ?? 0);
