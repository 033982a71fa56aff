import type { Root } from '../app.js';
import { registerConfigCommands } from './config.js';
import { registerGateCommand } from './gate.js';
import { registerSourceCommands } from './source.js';
import { registerSinkCommands } from './sink.js';
import { registerStatusCommand } from './status.js';
import { registerDemoCommand } from './demo.js';
import { registerInstallCommand } from './install.js';
import { registerCompletionCommand } from './completion.js';
import { registerVerifyCommand } from './verify.js';
import { registerRestoreCommand } from './restore.js';
import { registerOffsiteCommands } from './offsite.js';
import { registerNotifyFailureCommand } from './notify-failure.js';

/** Every command file exports one register function; this is the whole command tree. */
export function registerCommands(root: Root): void {
  registerConfigCommands(root);
  registerSourceCommands(root);
  registerSinkCommands(root);
  registerGateCommand(root);
  registerStatusCommand(root);
  registerDemoCommand(root);
  registerInstallCommand(root);
  registerCompletionCommand(root);
  registerVerifyCommand(root);
  registerRestoreCommand(root);
  registerOffsiteCommands(root);
  registerNotifyFailureCommand(root);
}
