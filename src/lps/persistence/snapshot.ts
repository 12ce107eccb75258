import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateRecord } from '../../gen/augur/storage/v1/lps_state.js';
import { SAMPLE_COLUMNS } from '../ring.js';
import type { EndpointStore } from '../store.js';
import type { EndpointRecord } from '../types.js';
import { SNAPSHOT_FILE, SNAPSHOT_TMP, syncDir } from './files.js';
import { frame } from './frames.js';

export const SNAPSHOT_FORMAT = 'augur.lps.snapshot/1';
export const LOG_FORMAT = 'augur.lps.log/1';

/** The header of a state file: its format, segment, and the sample columns of its Samples. */
export function header(format: string, segment: number): StateRecord {
  return {
    header: {
      format,
      segment,
      createdAtMs: Date.now(),
      sampleColumns: [...SAMPLE_COLUMNS],
    },
  };
}

/**
 * An endpoint as a state record: what its agent said, the LPS's state of it, and the identity
 * that holds it ('' where none does).
 */
function endpointRecord(r: EndpointRecord, owner: string): StateRecord {
  return {
    endpoint: {
      hello: {
        endpointId: r.id,
        service: r.service,
        address: r.address,
        port: r.port,
        locality: r.locality,
        labels: r.labels,
        capacity: r.capacity,
        agentVersion: '',
        requestedInterval: undefined,
      },
      atMs: r.lastSeenMs,
      state: {
        intervalSeconds: r.interval,
        intervalPinned: r.intervalPinned,
        draining: r.draining,
        lastSequence: r.lastSequence,
        lastSeenMs: r.lastSeenMs,
        samplesStored: r.samplesStored,
      },
      owner,
    },
  };
}

/** The newest `keep` samples of an endpoint, oldest first, row by row in SAMPLE_COLUMNS order. */
function samplesRecord(r: EndpointRecord, keep: number): StateRecord | undefined {
  const n = Math.min(keep, r.series.size);
  if (n === 0) return undefined;
  const rows = Buffer.allocUnsafe(n * SAMPLE_COLUMNS.length * 8);
  let pos = 0;
  for (let back = n - 1; back >= 0; back--) {
    for (const column of SAMPLE_COLUMNS) pos = rows.writeDoubleLE(r.series.at(column, back), pos);
  }
  return { samples: { endpointId: r.id, rows } };
}

/**
 * Writes every endpoint and its newest `keep` samples to `<dir>/snapshot.bin`, as of now: read
 * from memory in one go (so it is a consistent cut), written to a temporary file, fsynced,
 * renamed over the last snapshot, and the rename fsynced. `replayFrom` is the first log segment
 * a restart replays after it. A failure leaves the last snapshot as it was and no temporary file.
 */
export async function writeSnapshot(
  dir: string,
  store: EndpointStore,
  keep: number,
  replayFrom: number,
): Promise<{ path: string; bytes: number; endpoints: number }> {
  const frames: Buffer[] = [frame(header(SNAPSHOT_FORMAT, replayFrom))];
  const endpoints = store.all();
  for (const r of endpoints) {
    frames.push(frame(endpointRecord(r, store.ownerOf(r.id) ?? '')));
    const samples = samplesRecord(r, keep);
    if (samples) frames.push(frame(samples));
  }
  const data = Buffer.concat(frames);
  const tmp = join(dir, SNAPSHOT_TMP);
  const path = join(dir, SNAPSHOT_FILE);
  try {
    const handle = await open(tmp, 'w');
    try {
      let written = 0;
      while (written < data.length) {
        written += (await handle.write(data, written)).bytesWritten;
      }
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await syncDir(dir);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return { path, bytes: data.length, endpoints: endpoints.length };
}
