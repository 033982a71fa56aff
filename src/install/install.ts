/**
 * `baton install source|sink`: observe the host, plan (plan.ts, pure), then print the plan (--print)
 * or carry it out (apply.ts) and check the result by planning again: a second plan with changes left
 * means the install did not take, and is an error rather than a silent half-install.
 */
import { readFile } from 'node:fs/promises';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError, errnoCode, JobError } from '../errors.js';
import { applyAction } from './apply.js';
import { observePaths, observeUsers } from './observe.js';
import { installTargets, installUsers, planInstall, type Action, type InstallOptions } from './plan.js';
import { parsePublicKey } from './public-key.js';
import { countChanges, describeAction, renderContents, renderNotes } from './render.js';

export interface InstallRequest {
  target: LoadedConfig;
  options: Omit<InstallOptions, 'host'>;
  /** only show the plan and the files' contents */
  print: boolean;
  write: (text: string) => void;
}

async function observeAndPlan(req: InstallRequest): Promise<Action[]> {
  const { kind, config } = req.target;
  const users = await observeUsers(installUsers(kind, config));
  const targets = installTargets(kind, config, { ...req.options, host: { users, paths: new Map() } });
  const paths = await observePaths(targets);
  return planInstall(kind, config, { ...req.options, host: { users, paths } });
}

/** Returns how many changes were made (or would be, with --print). */
export async function runInstall(req: InstallRequest): Promise<number> {
  const { kind } = req.target;
  const where =
    req.options.scheduler === 'cron'
      ? `cron file in ${req.options.cronDir}`
      : `systemd units in ${req.options.unitDir}`;
  const plan = await observeAndPlan(req);
  const changes = countChanges(plan);
  const lines = (actions: readonly Action[]) =>
    actions.flatMap((a) => {
      const d = describeAction(a);
      return d === undefined ? [] : [`  ${d}\n`];
    });

  if (req.print) {
    req.write(
      `baton install ${kind} --print (config ${req.options.configFile}, ${where}): nothing is changed\n`,
    );
    req.write(lines(plan).join(''));
    req.write(`\n${renderContents(plan)}\n${renderNotes(plan)}\n`);
    req.write(
      changes
        ? `--print: ${changes} change(s) would be made\n`
        : 'nothing to do: everything is installed already\n',
    );
    return changes;
  }

  if (process.getuid?.() !== 0) {
    throw new ConfigError(`must run as root to create users, directories and units (or use --print)`, {
      step: 'install',
    });
  }
  req.write(`baton install ${kind} (config ${req.options.configFile}, ${where})\n`);
  for (const a of plan) {
    await applyAction(a);
    const d = describeAction(a);
    if (d !== undefined) req.write(`  ${d}\n`);
  }
  const after = await observeAndPlan(req);
  const left = after.filter((a) => a.type !== 'print' && a.change !== 'none');
  if (left.length) {
    throw new JobError(
      `still not as planned after installing: ${left.map((a) => describeAction(a)?.replace(/\s+/g, ' ')).join('; ')}`,
      { step: 'install' },
    );
  }
  req.write(`\n${renderNotes(after)}\n`);
  req.write(
    changes ? `done: ${changes} change(s) made\n` : 'nothing to do: everything is installed already\n',
  );
  return changes;
}

/** The one public key in `file` (`--sink-key-data`, `--ca-key`), checked; ConfigError naming the option otherwise. */
export async function readPublicKeyFile(option: string, file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${option} ${file}: cannot read it (${errnoCode(err) ?? String(err)})`, {
      step: 'install',
    });
  }
  const parsed = parsePublicKey(text);
  if (!parsed.ok) throw new ConfigError(`${option} ${file}: ${parsed.error}`, { step: 'install' });
  return parsed.line;
}
