import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common/logger.js';
import { SAMPLE_COLUMNS, type StoredSample } from './ring.js';
import type { EndpointStore } from './store.js';
import type { EndpointRecord } from './types.js';

const FILE = 'lps-endpoints.json';
const FORMAT = 'augur.lps.endpoints/1';

interface SavedEndpoint extends Omit<EndpointRecord, 'series' | 'connected'> {
  /** The newest samples, oldest first, columns in SAMPLE_COLUMNS order, as base64 Float64Array. */
  samples: string;
}

interface SavedFile {
  format: string;
  savedAt: number;
  columns: readonly string[];
  endpoints: SavedEndpoint[];
}

/**
 * Writes the store's endpoints and their newest samples to the data dir, so a
 * restarted LPS knows every endpoint's last sequence (replays after the restart
 * are not double-counted) and has the recent windows its forecasters need.
 * Written to a temporary file and renamed, so a crash never leaves half a file.
 */
export async function saveStore(
  store: EndpointStore,
  dataDir: string,
  keep: number,
): Promise<string> {
  await mkdir(dataDir, { recursive: true });
  const endpoints: SavedEndpoint[] = store.all().map((r) => {
    const n = Math.min(keep, r.series.size);
    const buf = new Float64Array(n * SAMPLE_COLUMNS.length);
    for (let i = 0; i < n; i++) {
      const s = r.series.get(n - 1 - i);
      SAMPLE_COLUMNS.forEach((c, j) => (buf[i * SAMPLE_COLUMNS.length + j] = s[c]));
    }
    const { series: _series, connected: _connected, ...rest } = r;
    return { ...rest, samples: Buffer.from(buf.buffer).toString('base64') };
  });
  const file: SavedFile = {
    format: FORMAT,
    savedAt: Date.now(),
    columns: SAMPLE_COLUMNS,
    endpoints,
  };
  const path = join(dataDir, FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(file));
  await rename(`${path}.tmp`, path);
  return path;
}

/**
 * Restores what `saveStore` wrote. A missing file is a fresh start; a corrupt
 * or incompatible one is logged, set aside as `.corrupt`, and also a fresh
 * start: the LPS must come up either way.
 */
export async function loadStore(
  store: EndpointStore,
  dataDir: string,
  logger: Logger,
): Promise<number> {
  const path = join(dataDir, FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return 0;
  }
  try {
    const file = JSON.parse(text) as SavedFile;
    if (file.format !== FORMAT)
      throw new Error(`format "${String(file.format)}", expected "${FORMAT}"`);
    // Files from an older version lack the newer columns: those read as unknown (NaN).
    const unknown = file.columns.filter((c) => !(SAMPLE_COLUMNS as readonly string[]).includes(c));
    if (unknown.length > 0) throw new Error(`unknown sample columns ${unknown.join(', ')}`);
    const width = file.columns.length;
    const at = SAMPLE_COLUMNS.map((c) => file.columns.indexOf(c));
    for (const saved of file.endpoints) {
      const { samples, ...meta } = saved;
      const bytes = Buffer.from(samples, 'base64');
      const values = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
      const record: EndpointRecord = { ...meta, connected: false, series: store.newRing() };
      for (let i = 0; i + width <= values.length; i += width) {
        record.series.push(
          Object.fromEntries(
            SAMPLE_COLUMNS.map((c, j) => [c, at[j]! < 0 ? NaN : values[i + at[j]!]!]),
          ) as StoredSample,
        );
      }
      store.restore(record);
    }
    logger.info({ path, endpoints: file.endpoints.length }, 'restored endpoints from data dir');
    return file.endpoints.length;
  } catch (err) {
    logger.error(
      { path, err: (err as Error).message },
      'endpoint state in data dir is unreadable; starting fresh',
    );
    await rename(path, `${path}.corrupt`).catch(() => undefined);
    return 0;
  }
}
