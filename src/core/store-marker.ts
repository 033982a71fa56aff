/**
 * The file that says "this directory is a baton sink store". `baton install sink` creates it once;
 * `baton sink pull` refuses a store root without it, so an unmounted disk (an empty mountpoint
 * directory) is never filled from scratch.
 */
export const STORE_MARKER = '.baton-store';

export const STORE_MARKER_CONTENT =
  'This directory is a baton sink store. baton sink pull refuses to write into a store root\n' +
  'without this file (e.g. a disk that is not mounted). Do not copy it to other directories.\n';
