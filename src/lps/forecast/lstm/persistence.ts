import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../../common/logger.js';
import type { LstmWorker } from './client.js';

let saves = 0;

/** Writes the worker's model and normalisers to `file` atomically (temp file + rename). */
export async function saveLstm(worker: LstmWorker, file: string): Promise<void> {
  const state = await worker.export();
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${++saves}.tmp`;
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, file);
}

/**
 * Restores the worker's state from `file`. A missing file is a fresh start; an
 * unreadable, corrupt or incompatible one is logged and also a fresh start: a
 * learned model is worth keeping, never worth refusing to serve for.
 * Returns whether a model was restored.
 */
export async function loadLstm(worker: LstmWorker, file: string, logger: Logger): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      logger.warn(
        { file, err: (err as Error).message },
        'cannot read the saved LSTM model; starting fresh',
      );
    return false;
  }
  try {
    await worker.import(JSON.parse(text));
    logger.info({ file }, 'restored the LSTM model and normalisers');
    return true;
  } catch (err) {
    logger.warn(
      { file, err: (err as Error).message },
      'the saved LSTM model is corrupt or incompatible with this configuration; starting fresh',
    );
    return false;
  }
}
