import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { AgentMessage, type EndpointData } from '../gen/augur/v1/telemetry.js';
import type { ForwardedOutcome, TelemetryServiceImpl } from '../lps/telemetry-service.js';
import { ENTRY } from './forwarder.js';
import type { Keys } from './scripts.js';

interface Reading {
  /** Id of the last entry taken. */
  lastId: string;
  /** The stream's last id when reading began; caught up once past it. */
  target: string;
  /** Entries taken so far. */
  entries: number;
  caughtUp: () => void;
  done: boolean;
}

export interface IntakeOptions {
  /** A connection of its own (XREAD blocks it). */
  reader: Redis;
  /** For the one-off reads. */
  redis: Redis;
  keys: Keys;
  telemetry: TelemetryServiceImpl;
  logger: Logger;
  onEntry: (outcome: ForwardedOutcome | 'backfilled') => void;
}

const BATCH = 1000;
const BLOCK_MS = 250;

/**
 * The owner's side of sample forwarding: reads the sample stream of every service this replica
 * owns (XREAD from its last id) and takes each hello, sample and goodbye through the LPS's
 * validation (TelemetryServiceImpl.ingestForwarded*). A service it begins to own is read from
 * the start of its stream (bounded by cluster.streamMaxLen): the new owner rebuilds the recent
 * history of the service's endpoints, and sequence numbers make each sample count once, however
 * many replicas passed it on. `add` settles once the stream is read up to where it was when the
 * service was taken.
 */
export class Intake {
  private readonly reading = new Map<string, Reading>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: IntakeOptions) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.options.reader.disconnect();
    await this.loop;
    for (const r of this.reading.values()) r.caughtUp();
    this.reading.clear();
  }

  /**
   * Starts reading a service's stream from its start; settles once caught up, with the number of
   * entries read until then.
   */
  async add(service: string): Promise<number> {
    const key = this.options.keys.samples(service);
    const last = (await this.options.redis.xrevrange(key, '+', '-', 'COUNT', 1))[0];
    const target = last?.[0] ?? '0-0';
    return new Promise<number>((resolve) => {
      const reading: Reading = {
        lastId: '0-0',
        target,
        entries: 0,
        caughtUp: () => resolve(reading.entries),
        done: false,
      };
      this.reading.set(service, reading);
      this.check(reading);
      this.wake?.();
    });
  }

  remove(service: string): void {
    const r = this.reading.get(service);
    this.reading.delete(service);
    r?.caughtUp();
  }

  private check(r: Reading): void {
    if (!r.done && compareIds(r.lastId, r.target) >= 0) {
      r.done = true;
      r.caughtUp();
    }
  }

  private async run(): Promise<void> {
    const { reader, keys, logger } = this.options;
    while (this.running) {
      const services = [...this.reading.keys()];
      if (services.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, BLOCK_MS);
        });
        continue;
      }
      let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      try {
        reply = await reader.xreadBuffer(
          'COUNT',
          BATCH,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...services.map((s) => keys.samples(s)),
          ...services.map((s) => this.reading.get(s)!.lastId),
        );
      } catch (err) {
        if (!this.running) return;
        logger.warn({ err: (err as Error).message }, 'cannot read sample streams; retrying');
        await new Promise((r) => setTimeout(r, BLOCK_MS));
        continue;
      }
      const older = new Map<string, Array<{ sample: EndpointData; atMs: number }>>();
      for (const [keyBuf, entries] of reply ?? []) {
        const service = keyBuf.toString().slice(keys.samples('').length);
        const reading = this.reading.get(service);
        if (!reading) continue;
        for (const [idBuf, fields] of entries) {
          const id = idBuf.toString();
          this.take(id, fields, older);
          reading.lastId = id;
          reading.entries++;
        }
      }
      for (const [endpointId, samples] of older) {
        const n = this.options.telemetry.backfillForwarded(endpointId, samples);
        for (let i = 0; i < n; i++) this.options.onEntry('backfilled');
      }
      for (const r of this.reading.values()) this.check(r);
    }
  }

  private take(
    id: string,
    fields: Buffer[],
    older: Map<string, Array<{ sample: EndpointData; atMs: number }>>,
  ): void {
    const f = new Map<string, Buffer>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
    const kind = f.get('t')?.toString();
    const endpointId = f.get('e')?.toString() ?? '';
    // When the replica passed it on (Redis's clock), never later than now.
    const atMs = Math.min(Number(id.split('-')[0]), Date.now());
    const { telemetry, onEntry, logger } = this.options;
    try {
      if (kind === ENTRY.hello) {
        const hello = AgentMessage.decode(f.get('d') ?? Buffer.alloc(0)).hello;
        if (hello) onEntry(telemetry.ingestForwardedHello(hello, atMs));
      } else if (kind === ENTRY.samples) {
        const samples = AgentMessage.decode(f.get('d') ?? Buffer.alloc(0)).batch?.samples ?? [];
        for (const s of samples) {
          const id = endpointId || s.endpointId;
          const outcome = telemetry.ingestForwardedSample(id, s, atMs);
          if (outcome === 'older') {
            const list = older.get(id) ?? [];
            older.set(id, list);
            list.push({ sample: s, atMs });
          } else onEntry(outcome);
        }
      } else if (kind === ENTRY.goodbye) {
        telemetry.ingestForwardedGoodbye(endpointId);
      }
    } catch (err) {
      onEntry('refused');
      logger.warn({ err: (err as Error).message, id }, 'a sample stream entry cannot be read');
    }
  }
}

/** Orders Redis stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
