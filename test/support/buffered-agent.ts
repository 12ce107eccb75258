import type { EndpointData } from '../../src/gen/augur/v1/telemetry.js';
import { makeSample, RawAgentStream } from './raw-agent.js';

/**
 * An agent as the real one behaves across control-plane replicas: a sample every `everyMs`,
 * kept until acknowledged; when its stream ends it reconnects to the next address and replays
 * what is not acknowledged, sequence numbers continuing.
 */
export class BufferedAgent {
  sequence = 0;
  acked = 0;
  reconnects = 0;
  /** Samples sent and not acknowledged yet. */
  buffer: EndpointData[] = [];
  private stream: RawAgentStream | undefined;
  private seen = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastTs = 0;
  private at = 0;

  constructor(
    readonly id: string,
    readonly service: string,
    private readonly port: number,
    private readonly addresses: () => string[],
    private readonly cpu: number,
    first: number,
  ) {
    this.at = first;
  }

  /** Index (into addresses()) of the replica it reports to now. */
  get replica(): number {
    return this.at;
  }

  start(everyMs = 100): this {
    this.connect();
    this.timer = setInterval(() => this.tick(true), everyMs);
    return this;
  }

  /** Stops sampling; keeps the stream, so the acks still come. */
  pause(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(false), 50);
  }

  close(): void {
    clearInterval(this.timer);
    this.stream?.close();
    this.stream = undefined;
  }

  private connect(): void {
    const addresses = this.addresses();
    this.stream = new RawAgentStream(addresses[this.at % addresses.length]!);
    this.seen = 0;
    this.stream.hello({
      endpointId: this.id,
      service: this.service,
      address: '127.0.0.1',
      port: this.port,
      locality: { region: 'r1', zone: 'z1', subZone: '' },
    });
    for (const s of this.buffer) this.stream.send({ sample: s });
  }

  private tick(sample: boolean): void {
    const stream = this.stream;
    if (!stream) return;
    for (; this.seen < stream.received.length; this.seen++) {
      const ack = stream.received[this.seen]!.ack;
      if (ack && ack.lastSequence > this.acked) {
        this.acked = ack.lastSequence;
        this.buffer = this.buffer.filter((s) => s.sequence > this.acked);
      }
    }
    if (stream.status) {
      // The replica went away: the next one gets the hello and what is not acknowledged.
      stream.close();
      this.at++;
      this.reconnects++;
      this.connect();
      return;
    }
    if (!sample) return;
    this.lastTs = Math.max(Date.now(), this.lastTs + 1);
    const s = makeSample({
      endpointId: this.id,
      sequence: ++this.sequence,
      cpuUsage: this.cpu,
      responseTime: 0.002,
      timestamp: new Date(this.lastTs),
    });
    this.buffer.push(s);
    stream.send({ sample: s });
  }
}
