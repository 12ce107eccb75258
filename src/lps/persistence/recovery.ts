import { readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import type {
  Endpoint,
  Goodbye,
  IntervalSet,
  Samples,
  StateRecord,
} from '../../gen/augur/storage/v1/lps_state.js';
import type { LpsConfig } from '../config.js';
import { SAMPLE_COLUMNS, type StoredSample } from '../ring.js';
import { endpointDataOf, type EndpointStore } from '../store.js';
import { validateHello } from '../validate.js';
import { SNAPSHOT_FILE, SNAPSHOT_TMP, listSegments, segmentPath } from './files.js';
import { readFrames } from './frames.js';
import { LOG_FORMAT, SNAPSHOT_FORMAT } from './snapshot.js';

/** The longest identity name a restored endpoint may be held by (a SAN or a principal's name). */
const MAX_OWNER_CHARS = 4096;

/** What a restart found in the data dir. */
export interface Recovered {
  /** The segment new log records go to: one past every segment on disk. */
  nextSegment: number;
  /** When the snapshot restored was written (ms since the epoch), if there was one. */
  snapshotAtMs: number | undefined;
  /** Log segments replayed after it. */
  segments: number;
  endpoints: number;
  samples: number;
  /** Records (or single samples) refused as invalid; each was logged with its reason. */
  refused: number;
}

/** Refusals logged one by one; past this, only counted. */
const LOGGED_REFUSALS = 20;

/**
 * Applies the records of the saved state to the store, each checked as the wire's messages are:
 * an endpoint like a hello (validateHello), a sample like a sample (the store's `accept`, with the
 * LPS clock of its first arrival), an interval against the configured bounds. A bad record is
 * refused and logged, and the good ones are kept, so one damaged record costs that record only.
 */
class Restorer {
  refused = 0;
  samples = 0;
  /** Per endpoint of the snapshot, the state to apply once its samples are in. */
  private readonly saved = new Map<
    string,
    { lastSequence: number; samplesStored: number; lastSeenMs: number }
  >();

  constructor(
    private readonly store: EndpointStore,
    private readonly config: LpsConfig,
    private readonly logger: Logger,
  ) {}

  apply(record: StateRecord, where: string, columns: readonly string[], snapshot: boolean): void {
    if (record.endpoint) this.endpoint(record.endpoint, where, snapshot);
    else if (record.samples) this.samplesOf(record.samples, where, columns);
    else if (record.interval) this.interval(record.interval, where);
    else if (record.goodbye) this.goodbye(record.goodbye, where);
    else this.refuse(where, undefined, 'a record of no known kind (written by a newer augur?)');
  }

  /** After the snapshot: what its endpoints had counted beyond the samples it keeps. */
  settleSnapshot(): void {
    for (const [id, s] of this.saved) {
      const record = this.store.get(id);
      if (!record) continue;
      record.lastSequence = Math.max(record.lastSequence, s.lastSequence);
      record.samplesStored = Math.max(record.samplesStored, s.samplesStored);
      record.lastSeenMs = Math.max(record.lastSeenMs, s.lastSeenMs);
    }
    this.saved.clear();
  }

  private refuse(where: string, endpoint: string | undefined, reason: string): void {
    this.refused++;
    if (this.refused <= LOGGED_REFUSALS) {
      this.logger.warn(
        { where, endpoint, reason },
        'refused a record of the saved state; the others are kept',
      );
    }
  }

  private endpoint(e: Endpoint, where: string, snapshot: boolean): void {
    const hello = e.hello;
    if (!hello) return this.refuse(where, undefined, 'an endpoint record without its hello');
    const bad = validateHello(hello);
    if (bad) return this.refuse(where, hello.endpointId, `${bad.field}: ${bad.message}`);
    if (!Number.isFinite(e.atMs) || e.atMs <= 0)
      return this.refuse(where, hello.endpointId, `at_ms ${e.atMs} is not a time`);
    if (e.owner.length > MAX_OWNER_CHARS)
      return this.refuse(
        where,
        hello.endpointId,
        `owner of ${e.owner.length} characters is not an identity (at most ${MAX_OWNER_CHARS})`,
      );
    const s = e.state;
    if (snapshot && !s) return this.refuse(where, hello.endpointId, 'no state in a snapshot');
    if (s) {
      const problem =
        !Number.isFinite(s.intervalSeconds) || s.intervalSeconds <= 0
          ? `interval ${s.intervalSeconds} s is not a positive number`
          : !Number.isSafeInteger(s.lastSequence) || s.lastSequence < 0
            ? `last_sequence ${s.lastSequence} is not a sequence`
            : !Number.isSafeInteger(s.samplesStored) || s.samplesStored < 0
              ? `samples_stored ${s.samplesStored} is not a count`
              : !Number.isFinite(s.lastSeenMs) || s.lastSeenMs <= 0
                ? `last_seen_ms ${s.lastSeenMs} is not a time`
                : undefined;
      if (problem) return this.refuse(where, hello.endpointId, problem);
    }
    const record = this.store.upsertFromHello(hello, e.atMs, e.owner || undefined);
    record.connected = false;
    if (s) {
      record.interval = this.store.clampInterval(s.intervalSeconds);
      record.intervalPinned = s.intervalPinned;
      record.draining = s.draining;
      this.saved.set(record.id, {
        lastSequence: s.lastSequence,
        samplesStored: s.samplesStored,
        lastSeenMs: s.lastSeenMs,
      });
    }
  }

  private samplesOf(s: Samples, where: string, columns: readonly string[]): void {
    const record = this.store.get(s.endpointId);
    if (!record) {
      return this.refuse(where, s.endpointId, 'samples of an endpoint no valid record introduced');
    }
    const width = columns.length * 8;
    if (width === 0 || s.rows.length % width !== 0) {
      return this.refuse(
        where,
        s.endpointId,
        `${s.rows.length} bytes do not make rows of ${columns.length} doubles`,
      );
    }
    const at = SAMPLE_COLUMNS.map((c) => columns.indexOf(c));
    const latestAcceptable = Date.now() + this.config.maxClockSkew * 1000;
    for (let row = 0; row * width < s.rows.length; row++) {
      const base = row * width;
      const stored = {} as StoredSample;
      SAMPLE_COLUMNS.forEach((c, i) => {
        // A column the log predates reads as unknown (NaN); validation refuses it where it is required.
        stored[c] = at[i]! >= 0 ? s.rows.readDoubleLE(base + at[i]! * 8) : NaN;
      });
      const rowWhere = `${where}, row ${row}`;
      if (!Number.isFinite(stored.receivedAt) || stored.receivedAt > latestAcceptable) {
        this.refuse(rowWhere, s.endpointId, `received_at ${stored.receivedAt} is not a past time`);
        continue;
      }
      if (stored.healthy !== 0 && stored.healthy !== 1) {
        this.refuse(rowWhere, s.endpointId, `healthy ${stored.healthy} is neither 0 nor 1`);
        continue;
      }
      const outcome = this.store.accept(
        record,
        endpointDataOf(s.endpointId, stored),
        stored.receivedAt,
      );
      if (outcome === 'stored') this.samples++;
      else if (outcome !== 'duplicate') {
        this.refuse(
          rowWhere,
          s.endpointId,
          `sample ${stored.sequence}: ${outcome.field}: ${outcome.message}`,
        );
      }
    }
  }

  private interval(i: IntervalSet, where: string): void {
    const { minInterval, maxInterval } = this.config;
    if (!Number.isFinite(i.seconds) || i.seconds < minInterval || i.seconds > maxInterval) {
      return this.refuse(
        where,
        i.endpointIds.join(','),
        `interval ${i.seconds} s is outside [${minInterval}, ${maxInterval}]`,
      );
    }
    this.store.setInterval(i.endpointIds, i.seconds);
  }

  private goodbye(g: Goodbye, where: string): void {
    const record = this.store.get(g.endpointId);
    if (!record) return this.refuse(where, g.endpointId, 'goodbye of an unknown endpoint');
    this.store.disconnect(record, true);
  }
}

/**
 * Restores the store from `<dataDir>/lps`: the snapshot, then every log segment from the one it
 * names, in order. A file stops at its first torn or damaged frame (a cut write leaves one at the
 * end of the last segment; it held nothing that was acknowledged). An unreadable snapshot is set
 * aside as `snapshot.bin.corrupt-<time>` and the log is replayed from its first segment.
 */
export async function recover(
  dir: string,
  store: EndpointStore,
  config: LpsConfig,
  logger: Logger,
): Promise<Recovered> {
  const restorer = new Restorer(store, config, logger);
  await unlink(join(dir, SNAPSHOT_TMP)).then(
    () => logger.info({ dir }, 'removed the temporary file of an unfinished snapshot'),
    () => undefined,
  );
  const segments = await listSegments(dir);
  let replayFrom = segments[0] ?? 1;
  let snapshotAtMs: number | undefined;

  const snapshotPath = join(dir, SNAPSHOT_FILE);
  const snapshotBytes = await readFile(snapshotPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (snapshotBytes) {
    const read = readFrames(snapshotBytes);
    const head = read.records[0]?.header;
    if (!head || head.format !== SNAPSHOT_FORMAT) {
      const aside = `${snapshotPath}.corrupt-${Date.now()}`;
      await rename(snapshotPath, aside);
      logger.error(
        { path: snapshotPath, setAside: aside, found: head?.format ?? read.stoppedBecause },
        `the snapshot is not an ${SNAPSHOT_FORMAT} file; set aside, replaying the whole log`,
      );
    } else {
      snapshotAtMs = head.createdAtMs;
      replayFrom = head.segment;
      read.records
        .slice(1)
        .forEach((r, i) =>
          restorer.apply(r, `${SNAPSHOT_FILE} record ${i + 1}`, head.sampleColumns, true),
        );
      restorer.settleSnapshot();
      if (read.stoppedBecause) {
        logger.error(
          { path: snapshotPath, readBytes: read.goodBytes, ofBytes: snapshotBytes.length },
          `the snapshot is damaged (${read.stoppedBecause}); kept what came before`,
        );
      }
    }
  }

  let replayed = 0;
  for (const segment of segments) {
    const path = segmentPath(dir, segment);
    if (segment < replayFrom) {
      // Covered by the snapshot: a checkpoint stopped before it could delete it.
      await unlink(path).catch(() => undefined);
      continue;
    }
    const bytes = await readFile(path);
    const read = readFrames(bytes);
    const head = read.records[0]?.header;
    if (!head || head.format !== LOG_FORMAT) {
      // A segment that never got its header written holds nothing.
      if (bytes.length > 0) {
        logger.error(
          { path, found: head?.format ?? read.stoppedBecause },
          `not an ${LOG_FORMAT} file; skipped`,
        );
      }
      continue;
    }
    replayed++;
    read.records
      .slice(1)
      .forEach((r, i) =>
        restorer.apply(r, `log-${segment} record ${i + 1}`, head.sampleColumns, false),
      );
    if (read.stoppedBecause) {
      const last = segment === segments[segments.length - 1];
      logger.warn(
        { path, readBytes: read.goodBytes, ofBytes: bytes.length },
        `log segment ends early (${read.stoppedBecause}); ` +
          (last
            ? 'a write was cut short: what it held had not been acknowledged'
            : 'a write failed there and the log went on in the next segment'),
      );
    }
  }
  if (restorer.refused > LOGGED_REFUSALS) {
    logger.error(
      { refused: restorer.refused, logged: LOGGED_REFUSALS },
      'refused records of the saved state (the first ones are logged above)',
    );
  }
  return {
    nextSegment: Math.max((segments[segments.length - 1] ?? 0) + 1, replayFrom),
    snapshotAtMs,
    segments: replayed,
    endpoints: store.size,
    samples: restorer.samples,
    refused: restorer.refused,
  };
}
