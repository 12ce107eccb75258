import { mkdir, open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AugurError } from '../../common/errors.js';

/** Free bytes of the file system that holds `dir` (for an unprivileged writer). */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Makes sure the LPS can keep what it acknowledges in `dir`: creates it, and writes, fsyncs and
 * removes a probe file. Throws DATA_DIR_UNWRITABLE naming the dir and the system's reason.
 * Returns the free bytes there.
 */
export async function checkDataDir(dir: string): Promise<number> {
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(probe, 'w');
    try {
      await handle.write('augur');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(probe);
  } catch (err) {
    await unlink(probe).catch(() => undefined);
    throw new AugurError(
      'DATA_DIR_UNWRITABLE',
      `cannot write the data dir ${dir} (${(err as Error).message}): the LPS keeps every acknowledged sample there; give it a writable --data-dir`,
      { cause: err },
    );
  }
  return freeBytes(dir);
}
