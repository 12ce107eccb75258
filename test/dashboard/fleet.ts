import * as grpc from '@grpc/grpc-js';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
} from '../../src/gen/augur/v1/telemetry.js';
import { makeSample } from '../support/raw-agent.js';

export interface FleetOptions {
  grpcAddress: string;
  endpoints: number;
  services: number;
  /** Seconds between samples of each endpoint. */
  intervalSeconds: number;
}

/**
 * Many endpoints over the raw Telemetry API: one stream each (on one
 * channel), a hello then a sample every interval, spread over the interval as
 * real agents are. CPU follows a slow sine with a phase per endpoint.
 */
export class Fleet {
  readonly ids: string[];
  private readonly client: InstanceType<typeof TelemetryClient>;
  private readonly calls: Array<grpc.ClientDuplexStream<AgentMessage, ControlMessage>> = [];
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: FleetOptions) {
    this.client = new TelemetryClient(options.grpcAddress, grpc.credentials.createInsecure());
    this.ids = Array.from(
      { length: options.endpoints },
      (_, i) => `ep-${String(i).padStart(4, '0')}`,
    );
  }

  start(): void {
    const { services, intervalSeconds } = this.options;
    const everyMs = intervalSeconds * 1000;
    this.ids.forEach((id, i) => {
      const call = this.client.report();
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.write({
        hello: {
          endpointId: id,
          service: `svc-${i % services}`,
          address: '10.0.0.1',
          port: 10_000 + i,
          labels: {},
          agentVersion: 'fleet',
          capacity: { cpuCores: 2, memoryBytes: 2 ** 31, networkBytesPerSecond: 1e9 },
        },
      });
      this.calls.push(call);
      let seq = 0;
      const tick = () =>
        call.write({
          sample: makeSample({
            sequence: ++seq,
            cpuUsage: 0.45 + 0.3 * Math.sin(Date.now() / 4000 + i),
            requestRate: 50,
          }),
        });
      const start = setTimeout(
        () => {
          tick();
          this.timers.push(setInterval(tick, everyMs));
        },
        (i * everyMs) / this.ids.length,
      );
      this.timers.push(start);
    });
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    for (const c of this.calls) c.cancel();
    this.client.close();
  }
}
