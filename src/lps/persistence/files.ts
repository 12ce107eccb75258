import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/*
 * Where the LPS keeps its state: `<dataDir>/lps/snapshot.bin` (written as `snapshot.bin.tmp`,
 * fsynced, renamed) and the log segments `<dataDir>/lps/log-<segment>.bin`, segment numbers
 * increasing from 1.
 */

export const SNAPSHOT_FILE = 'snapshot.bin';
export const SNAPSHOT_TMP = `${SNAPSHOT_FILE}.tmp`;
const SEGMENT = /^log-(\d{12})\.bin$/;

/** `<dataDir>/lps`. */
export const stateDir = (dataDir: string): string => join(dataDir, 'lps');

export const segmentPath = (dir: string, segment: number): string =>
  join(dir, `log-${String(segment).padStart(12, '0')}.bin`);

/** The log segments in `dir`, oldest first. */
export async function listSegments(dir: string): Promise<number[]> {
  const names = await readdir(dir);
  return names
    .map((n) => SEGMENT.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Makes the names in `dir` (a file created, renamed or removed) survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
