import * as grpc from '@grpc/grpc-js';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import {
  TelemetryClient,
  type AgentHello,
  type AgentMessage,
  type ControlMessage,
  type EndpointData,
} from '../../src/gen/augur/v1/telemetry.js';

/**
 * A Telemetry/Report stream driven message by message, for protocol tests
 * (the real agent in src/agent hides the protocol; these tests need to break it).
 */
export class RawAgentStream {
  readonly received: ControlMessage[] = [];
  status: grpc.StatusObject | undefined;
  private readonly client: InstanceType<typeof TelemetryClient>;
  private readonly call: grpc.ClientDuplexStream<AgentMessage, ControlMessage>;
  private waiters: Array<() => void> = [];

  constructor(
    address: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    metadata: grpc.Metadata = new grpc.Metadata(),
  ) {
    this.client = new TelemetryClient(address, credentials);
    this.call = this.client.report(metadata);
    this.call.on('data', (m: ControlMessage) => {
      this.received.push(m);
      this.wake();
    });
    this.call.on('status', (s: grpc.StatusObject) => {
      this.status = s;
      this.wake();
    });
    this.call.on('error', () => undefined);
  }

  send(msg: AgentMessage): void {
    this.call.write(msg);
  }

  hello(over: Partial<AgentHello> = {}): void {
    this.send({
      hello: {
        endpointId: 'ep-1',
        service: 'svc',
        address: '127.0.0.1',
        port: 9000,
        labels: {},
        agentVersion: 'test',
        capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
        ...over,
      },
    });
  }

  sample(over: Partial<EndpointData> & { sequence: number }): void {
    this.send({ sample: makeSample(over) });
  }

  /** Waits until a received message satisfies `pred` (searching from the start). */
  async waitMessage(
    pred: (m: ControlMessage) => boolean,
    timeoutMs = 3000,
  ): Promise<ControlMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(pred);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(
          `no matching control message in ${timeoutMs} ms: ${JSON.stringify(this.received)}`,
        );
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  async waitStatus(timeoutMs = 3000): Promise<grpc.StatusObject> {
    const deadline = Date.now() + timeoutMs;
    while (!this.status) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.status;
  }

  /** Half-closes (a goodbye). */
  end(): void {
    this.call.end();
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export function makeSample(over: Partial<EndpointData> & { sequence: number }): EndpointData {
  return {
    endpointId: '',
    cpuUsage: 0.2,
    memoryUsage: 0.3,
    networkIo: 1000,
    networkCapacity: 0,
    responseTime: 0.01,
    timestamp: new Date(),
    health: ProbeHealth.PROBE_HEALTH_SERVING,
    requestRate: 0,
    ...over,
  };
}
