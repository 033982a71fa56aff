/**
 * Modes of the files and directories inside a generation's `tree/`, in every store (handover,
 * source store, sink store): the permission bits a backup copy may carry. No setuid, setgid or
 * sticky bit and no write bit on files (a copy in a store must never run as its original owner, nor
 * be changed in place); the owner can always read (and list, enter and fill directories). The
 * original mode, setuid bits included, and the original owner are in the manifest; restore puts
 * them back.
 */

/** setuid and setgid: stripped in every store, restored from the manifest. */
export const SET_ID_BITS = 0o6000;

/** The mode a file of manifest mode `mode` has in a store's tree. */
export const storedFileMode = (mode: number): number => (mode & 0o555) | 0o400;

/** The mode a directory of manifest mode `mode` has in a store's tree. */
export const storedDirMode = (mode: number): number => (mode & 0o555) | 0o700;
