import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AugurError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { AgentHello } from '../../gen/augur/v1/telemetry.js';
import type { LpsConfig } from '../config.js';
import type { LpsMetrics } from '../metrics.js';
import { SAMPLE_COLUMNS, type StoredSample } from '../ring.js';
import type { EndpointStore, StoreJournal } from '../store.js';
import type { AckGate } from '../telemetry-service.js';
import { checkDataDir, freeBytes } from './data-dir.js';
import { listSegments, segmentPath, stateDir } from './files.js';
import { recover } from './recovery.js';
import { SampleLog } from './sample-log.js';
import { LOG_FORMAT, header, writeSnapshot } from './snapshot.js';

export interface StateJournalOptions {
  dataDir: string;
  config: LpsConfig;
  store: EndpointStore;
  metrics: LpsMetrics;
  logger: Logger;
}

const MiB = 1 << 20;
/** The state file of augur before the log (one JSON document); ignored now. */
const LEGACY_FILE = 'lps-endpoints.json';

/**
 * Keeps the LPS's state on disk, in `<dataDir>/lps`, and says when an acknowledgement may go out.
 *
 * The guarantee (`lps.durableAcks`, on by default): a sample is acknowledged only once it is in
 * the sample log and the log is fsynced, so every acknowledged sample survives a crash of the
 * LPS, a SIGKILL or a power cut, and is restored on restart, as long as it is still among the
 * newest `lps.persistSamples` of its endpoint at a checkpoint (the LPS keeps recent history, not
 * an archive). Every change the store makes (a hello, a sample, an interval, a goodbye) is
 * appended to the log; fsyncs are batched (SampleLog), so the cost is a delay of the ack, about
 * one fsync, and the CPU to encode each record (BENCHMARKS.md, "Ingest"). Every
 * `lps.persistInterval` seconds, or when the log passes `lps.logMaxBytes`, a checkpoint writes a
 * snapshot and deletes the log segments it covers. With `durableAcks` off, samples are
 * acknowledged on receipt and only the snapshots are written: a crash loses what came since the
 * last one.
 *
 * A failed write is an error in the log and a metric; while the log cannot be written nothing is
 * acknowledged (agents keep their samples), and past `lps.maxUnsyncedBytes` agents are turned
 * away with UNAVAILABLE. `close()` throws STATE_NOT_SAVED if the last save fails, so `augur serve`
 * exits non-zero.
 */
export class StateJournal implements StoreJournal, AckGate {
  private readonly options: StateJournalOptions;
  private readonly dir: string;
  private readonly log: SampleLog | undefined;
  /** The segment a snapshot names when there is no log (so leftovers of one are dropped). */
  private readonly noLogSegment: number;
  private timer: NodeJS.Timeout | undefined;
  /** Samples of one endpoint not yet appended: one record per agent message, not per sample. */
  private open: { endpointId: string; rows: Buffer; bytes: number } | undefined;
  private checkpointing: Promise<void> | undefined;
  private lastCheckpointMs = Date.now();

  /**
   * Checks the data dir (writable: else DATA_DIR_UNWRITABLE; free space under
   * `lps.minFreeBytes`: an error in the log), restores the store from it, and starts journalling.
   */
  static async open(options: StateJournalOptions): Promise<StateJournal> {
    const { config, logger, metrics, store } = options;
    const dir = stateDir(options.dataDir);
    const free = await checkDataDir(dir);
    metrics.dataDirFreeBytes.set(free);
    if (free < config.minFreeBytes) {
      logger.error(
        { dir, freeBytes: free, minFreeBytes: config.minFreeBytes },
        `the data dir has ${(free / MiB).toFixed(1)} MiB free, under lps.minFreeBytes: once it is full, samples are no longer acknowledged and the state is not saved`,
      );
    }
    if (existsSync(join(options.dataDir, LEGACY_FILE))) {
      logger.warn(
        { path: join(options.dataDir, LEGACY_FILE) },
        'endpoint state of an older augur (one JSON file) is ignored; agents replay what they hold',
      );
    }
    const recovered = await recover(dir, store, config, logger);
    if (recovered.snapshotAtMs === undefined && recovered.segments === 0) {
      logger.info({ dir }, 'no saved state in the data dir: starting empty');
    } else {
      logger.info(
        {
          dir,
          endpoints: recovered.endpoints,
          samples: recovered.samples,
          refused: recovered.refused,
          snapshotAt: recovered.snapshotAtMs && new Date(recovered.snapshotAtMs).toISOString(),
          logSegments: recovered.segments,
        },
        `restored ${recovered.endpoints} endpoints and ${recovered.samples} samples from the data dir`,
      );
    }
    const journal = new StateJournal(options, dir, recovered.nextSegment);
    if (journal.log) store.journal = journal;
    // What was replayed becomes the new base, so the next restart replays little.
    await journal.checkpoint().catch(() => undefined);
    journal.timer = setInterval(() => journal.tick(), 1000);
    journal.timer.unref();
    return journal;
  }

  private constructor(options: StateJournalOptions, dir: string, nextSegment: number) {
    this.options = options;
    this.dir = dir;
    this.noLogSegment = nextSegment;
    const { metrics, logger, config } = options;
    if (config.durableAcks) {
      this.log = new SampleLog({
        dir,
        firstSegment: nextSegment,
        header: (segment) => header(LOG_FORMAT, segment),
        logger,
        onSynced: (_records, _bytes, seconds) => metrics.logSyncSeconds.observe(seconds),
        onFailure: () => metrics.stateWriteFailures.inc({ file: 'log' }),
      });
    }
  }

  hello(hello: AgentHello, atMs: number, owner: string): void {
    this.seal();
    this.log?.append({ endpoint: { hello, atMs, state: undefined, owner } });
  }

  sample(endpointId: string, sample: StoredSample): void {
    if (!this.log) return;
    if (this.open && this.open.endpointId !== endpointId) this.seal();
    const row = SAMPLE_COLUMNS.length * 8;
    let open = this.open;
    if (!open) open = this.open = { endpointId, rows: Buffer.allocUnsafe(row * 4), bytes: 0 };
    if (open.bytes + row > open.rows.length) {
      const grown = Buffer.allocUnsafe(open.rows.length * 2);
      open.rows.copy(grown, 0, 0, open.bytes);
      open.rows = grown;
    }
    for (const column of SAMPLE_COLUMNS) {
      open.bytes = open.rows.writeDoubleLE(sample[column], open.bytes);
    }
  }

  interval(endpointIds: readonly string[], seconds: number): void {
    this.seal();
    this.log?.append({ interval: { endpointIds: [...endpointIds], seconds } });
  }

  goodbye(endpointId: string, atMs: number): void {
    this.seal();
    this.log?.append({ goodbye: { endpointId, atMs } });
  }

  durable(): Promise<void> | undefined {
    this.seal();
    return this.log?.durable();
  }

  /** Appends the samples gathered since the last record (the rows of one agent message). */
  private seal(): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    this.log?.append({
      samples: { endpointId: open.endpointId, rows: open.rows.subarray(0, open.bytes) },
    });
  }

  refusal(): string | undefined {
    if (!this.log || this.log.unsyncedBytes <= this.options.config.maxUnsyncedBytes) return;
    const why = this.log.failing ? ` (${this.log.failing.message})` : '';
    return `the LPS cannot write samples to its data dir fast enough${why}; they are not taken until it can`;
  }

  /**
   * Writes a snapshot of the store and deletes the log segments it covers. A failure is logged,
   * counted and thrown (STATE_NOT_SAVED); the log segments stay until a snapshot succeeds.
   */
  checkpoint(): Promise<void> {
    this.checkpointing ??= this.writeCheckpoint().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }

  /** Stops journalling, then writes what is pending and a last snapshot; throws STATE_NOT_SAVED. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.options.store.journal = undefined;
    this.seal();
    await this.checkpointing?.catch(() => undefined);
    const problems: string[] = [];
    let logKept = true;
    try {
      await this.log?.close();
    } catch (err) {
      logKept = false;
      problems.push(`the sample log: ${(err as Error).message}`);
    }
    try {
      await this.checkpoint();
    } catch (err) {
      problems.push(`the snapshot: ${((err as Error).cause as Error | undefined)?.message}`);
    }
    if (problems.length === 0) return;
    const safe =
      this.log && logKept
        ? '; every acknowledged sample is in the sample log and is restored on restart'
        : '';
    throw new AugurError(
      'STATE_NOT_SAVED',
      `could not save the LPS's state in ${this.dir}: ${problems.join('; ')}${safe}`,
    );
  }

  private tick(): void {
    const { persistInterval, logMaxBytes } = this.options.config;
    const due = persistInterval > 0 && Date.now() - this.lastCheckpointMs >= persistInterval * 1000;
    if (due || (this.log && this.log.segmentBytes >= logMaxBytes)) {
      this.checkpoint().catch(() => undefined);
    }
  }

  private async writeCheckpoint(): Promise<void> {
    const { store, config, metrics, logger } = this.options;
    this.lastCheckpointMs = Date.now();
    this.seal();
    const replayFrom = this.log ? this.log.rotate() : this.noLogSegment;
    const started = performance.now();
    try {
      const written = await writeSnapshot(this.dir, store, config.persistSamples, replayFrom);
      for (const segment of await listSegments(this.dir)) {
        if (segment < replayFrom) await unlink(segmentPath(this.dir, segment));
      }
      logger.debug(
        { ...written, replayFrom, ms: Math.round(performance.now() - started) },
        'state checkpoint written',
      );
    } catch (err) {
      metrics.stateWriteFailures.inc({ file: 'snapshot' });
      const e = err as NodeJS.ErrnoException;
      logger.error(
        { err: e.message, code: e.code, dir: this.dir },
        this.log
          ? 'cannot write the snapshot of the LPS state; the sample log keeps everything since the last one'
          : 'cannot write the snapshot of the LPS state; a restart would lose what came since the last one',
      );
      throw new AugurError(
        'STATE_NOT_SAVED',
        `cannot write the LPS's snapshot in ${this.dir}: ${e.message}`,
        { cause: err },
      );
    } finally {
      metrics.dataDirFreeBytes.set(await freeBytes(this.dir).catch(() => NaN));
    }
  }
}
