import { RawAgentStream } from './raw-agent.js';

/**
 * A minimal agent: hello, then a sample every 100 ms with the CPU it is told. Like the real
 * agent it outlives augur: it reconnects with its sequence numbers continuing.
 */
export class FeedingAgent {
  private stream: RawAgentStream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sequence = 0;
  private lastTs = 0;

  constructor(
    readonly id: string,
    private readonly port: number,
    private cpu: number,
    private readonly service: string,
  ) {}

  connect(address: string): this {
    this.stream = new RawAgentStream(address);
    this.stream.hello({
      endpointId: this.id,
      service: this.service,
      address: '127.0.0.1',
      port: this.port,
      locality: { region: 'r1', zone: 'z1', subZone: '' },
    });
    this.setCpu(this.cpu);
    this.timer = setInterval(() => this.sample(), 100);
    return this;
  }

  /** New load; a burst of samples moves the LPS's EWMA there at once. */
  setCpu(cpu: number): void {
    this.cpu = cpu;
    for (let i = 0; i < 25; i++) this.sample();
  }

  private sample(): void {
    this.lastTs = Math.max(Date.now(), this.lastTs + 1);
    this.stream?.sample({
      endpointId: this.id,
      sequence: ++this.sequence,
      cpuUsage: this.cpu,
      responseTime: 0.001,
      timestamp: new Date(this.lastTs),
    });
  }

  /** Goes silent (augur gone, or the agent stopped without a goodbye). */
  disconnect(): void {
    clearInterval(this.timer);
    this.stream?.close();
    this.stream = undefined;
  }
}
