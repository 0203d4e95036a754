// Build-time stand-in for `node:fs/promises` inside the single-file entry (tsup.config.ts).
// The core's file wrapper imports `open` statically, and loading `node:fs/promises` costs
// a CGI script time at every start whether or not a file is ever sent; here it is loaded
// on the first `open()` instead.
import type { FileHandle } from 'node:fs/promises';

/** open: `fs/promises.open`, loaded on first use. */
export async function open(
  path: string,
  flags?: string | number,
  mode?: string | number,
): Promise<FileHandle> {
  return process.getBuiltinModule('node:fs/promises').open(path, flags, mode);
}
