import type { Root } from '../app.js';

/** Every command file exports one register function; this is the whole command tree. */
export function registerCommands(root: Root): void {
  void root;
}
