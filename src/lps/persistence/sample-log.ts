import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../../common/logger.js';
import type { StateRecord } from '../../gen/augur/storage/v1/lps_state.js';
import { segmentPath, syncDir } from './files.js';
import { frame } from './frames.js';

export interface SampleLogOptions {
  /** `<dataDir>/lps`. */
  dir: string;
  /** The segment the first write opens (one past every segment already on disk). */
  firstSegment: number;
  /** The header of a new segment (its number is filled in). */
  header: (segment: number) => StateRecord;
  logger: Logger;
  /** A batch is on disk: `ms` from its first record being waited on to the end of its fsync. */
  onSynced?: (records: number, bytes: number, seconds: number) => void;
  /** A write or fsync failed; the batch stays pending and is tried again. */
  onFailure?: (err: Error) => void;
  /** Back-off between tries after a failure, ms. */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
  since: number;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A waiter may have gone (its stream closed); a failure is still reported through the log.
  promise.catch(() => undefined);
  return { promise, resolve, reject, since: performance.now() };
}

const RESOLVED = Promise.resolve();

/**
 * The LPS's append-only log: records are appended in memory at once, and written and fsynced in
 * batches (group commit): `durable()` gives a promise that settles when every record appended so
 * far is on disk. While one batch is written and synced, the records that arrive wait for the
 * next, so one fsync serves every stream that sent something in between, whatever the load.
 *
 * A failed write or fsync (a full disk, an I/O error) rejects that batch's waiters, keeps its
 * records pending, and is retried with back-off in a fresh segment (the old one may end in a torn
 * frame, which recovery stops at). `rotate()` starts a new segment, so a checkpoint can delete the
 * ones its snapshot covers.
 */
export class SampleLog {
  private readonly options: SampleLogOptions;
  private pending: Buffer[] = [];
  private pendingRecords = 0;
  private pendingBytes = 0;
  private waiting: Deferred | undefined;
  private inFlight: Promise<void> | undefined;
  private inFlightBytes = 0;
  private writing = false;
  private kickScheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private lastError: Error | undefined;
  /** The segment the next write goes to. */
  private segment: number;
  private file: { segment: number; handle: FileHandle; bytes: number } | undefined;
  private closed = false;

  constructor(options: SampleLogOptions) {
    this.options = options;
    this.segment = options.firstSegment;
  }

  append(record: StateRecord): void {
    if (this.closed) throw new Error('the sample log is closed');
    const framed = frame(record);
    this.pending.push(framed);
    this.pendingRecords++;
    this.pendingBytes += framed.length;
  }

  /** Settles when every record appended so far is on disk; rejects if that write failed. */
  durable(): Promise<void> {
    if (this.pending.length === 0) return this.inFlight ?? RESOLVED;
    this.waiting ??= deferred();
    this.kick();
    return this.waiting.promise;
  }

  /** Bytes appended and not yet on disk: what a crash now would lose (none of it acknowledged). */
  get unsyncedBytes(): number {
    return this.pendingBytes + this.inFlightBytes;
  }

  /** Bytes written to the current segment. */
  get segmentBytes(): number {
    return this.file?.bytes ?? 0;
  }

  /** The error of the last write while writes fail; undefined when the last one succeeded. */
  get failing(): Error | undefined {
    return this.lastError;
  }

  /**
   * Records appended from now on go to a new segment; returns its number. Every record in the
   * earlier segments was appended before this call.
   */
  rotate(): number {
    if (this.file?.segment === this.segment) this.segment++;
    return this.segment;
  }

  /** Writes what is pending and closes the file; rejects if the pending records cannot be written. */
  async close(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      while (this.pending.length > 0 || this.writing) {
        if (this.writing) await this.inFlight?.catch(() => undefined);
        else await this.flush(false);
        if (this.lastError && this.pending.length > 0) throw this.lastError;
      }
    } finally {
      this.closed = true;
      if (this.file) {
        // A later rotate() (the last checkpoint) must name a segment after this one.
        this.segment = this.file.segment + 1;
        await this.file.handle.close().catch(() => undefined);
        this.file = undefined;
      }
    }
  }

  private kick(): void {
    if (this.writing || this.retryTimer || this.kickScheduled) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      void this.flush(true);
    });
  }

  private async flush(retryOnFailure: boolean): Promise<void> {
    if (this.writing || this.pending.length === 0) return;
    this.writing = true;
    const chunks = this.pending;
    const records = this.pendingRecords;
    const bytes = this.pendingBytes;
    const waiting = this.waiting ?? deferred();
    this.pending = [];
    this.pendingRecords = 0;
    this.pendingBytes = 0;
    this.waiting = undefined;
    this.inFlight = waiting.promise;
    this.inFlightBytes = bytes;
    try {
      const file = await this.openSegment();
      const data = Buffer.concat(chunks, bytes);
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await file.handle.write(data, written);
        written += bytesWritten;
      }
      await file.handle.datasync();
      file.bytes += bytes;
      if (this.lastError) {
        this.options.logger.info(
          { segment: file.segment, failedTries: this.failures },
          'sample log writes again; acknowledgements resume',
        );
      }
      this.lastError = undefined;
      this.failures = 0;
      this.options.onSynced?.(records, bytes, (performance.now() - waiting.since) / 1000);
      waiting.resolve();
    } catch (e) {
      const err = e as Error;
      this.failures++;
      // Keep the batch, in order, ahead of what arrived meanwhile; its waiters learn of the
      // failure now, and the next durable() covers the batch again.
      this.pending = [...chunks, ...this.pending];
      this.pendingRecords += records;
      this.pendingBytes += bytes;
      // The file may end in part of this batch: continue in a fresh segment.
      const broken = this.file;
      this.file = undefined;
      if (broken) {
        this.segment = Math.max(this.segment, broken.segment + 1);
        await broken.handle.close().catch(() => undefined);
      }
      if (err.message !== this.lastError?.message) {
        this.options.logger.error(
          { err: err.message, code: (err as NodeJS.ErrnoException).code, dir: this.options.dir },
          'cannot write the sample log: samples are not acknowledged until it writes again',
        );
      }
      this.lastError = err;
      this.options.onFailure?.(err);
      waiting.reject(err);
      if (retryOnFailure && !this.closed) {
        const initial = this.options.retryInitialMs ?? 200;
        const delay = Math.min(this.options.retryMaxMs ?? 5000, initial * 2 ** (this.failures - 1));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          void this.flush(true);
        }, delay);
        this.retryTimer.unref();
      }
    } finally {
      this.writing = false;
      this.inFlight = undefined;
      this.inFlightBytes = 0;
      if (this.pending.length > 0 && this.waiting && !this.retryTimer && !this.closed) this.kick();
    }
  }

  /** The open file of the current segment, opening it (header first) if needed. */
  private async openSegment(): Promise<{ segment: number; handle: FileHandle; bytes: number }> {
    if (this.file && this.file.segment === this.segment) return this.file;
    if (this.file) {
      const old = this.file;
      this.file = undefined;
      await old.handle.close();
    }
    const segment = this.segment;
    let handle: FileHandle | undefined;
    try {
      handle = await open(segmentPath(this.options.dir, segment), 'wx');
      const head = frame(this.options.header(segment));
      await handle.write(head);
      await handle.datasync();
      // The new file's name must be on disk too, or a crash could lose the whole segment.
      await syncDir(this.options.dir);
      this.file = { segment, handle, bytes: head.length };
      return this.file;
    } catch (err) {
      await handle?.close().catch(() => undefined);
      // Whatever is left of this segment is never written to again.
      this.segment = segment + 1;
      throw err;
    }
  }
}
