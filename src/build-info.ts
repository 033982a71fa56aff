/**
 * What `npm run build` embeds into the bundled CLI (scripts/bundle.mjs, esbuild `define`): the
 * package's version and the example configs. The bundle then needs no file beside it: copied alone,
 * installed under /usr/lib/baton or from the npm tarball, it still knows its version and prints
 * `baton config example`. Unbundled (tsc's dist/, tsx in tests) the global is absent and callers read
 * the files instead.
 */
import type { ConfigKind } from './config/schema.js';

export interface BuildInfo {
  version: string;
  examples: Record<ConfigKind, string>;
}

declare const __BATON_BUILD_INFO__: BuildInfo | undefined;

export const buildInfo: BuildInfo | undefined =
  typeof __BATON_BUILD_INFO__ === 'undefined' ? undefined : __BATON_BUILD_INFO__;
