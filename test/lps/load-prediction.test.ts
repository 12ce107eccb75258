import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import {
  LoadPredictionClient,
  type ListEndpointsResponse,
  type PrioritizedEndpointList,
  type SetMonitoringIntervalResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
});

function client(): InstanceType<typeof LoadPredictionClient> {
  const c = new LoadPredictionClient(plane!.grpcAddress, grpc.credentials.createInsecure());
  closers.push(() => c.close());
  return c;
}

function agent(id: string, cpu: number): RawAgentStream {
  const s = new RawAgentStream(plane!.grpcAddress);
  closers.push(() => s.close());
  s.hello({ endpointId: id, port: 9000 + id.length });
  s.sample({ sequence: 1, cpuUsage: cpu });
  return s;
}

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

/** Promise form of a unary call; `call` invokes the client method with the callback. */
function unary<Res>(call: (cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => call((err, res) => (err ? reject(err) : resolve(res))));
}

describe('LoadPrediction API', () => {
  it('orders endpoints best first with weights summing to 1 and score parts', async () => {
    plane = await startTestPlane({ lps: { scoreInterval: 0.05 } });
    agent('busy', 0.9);
    agent('idle', 0.1);
    agent('mid', 0.5);
    const c = client();
    const list = await waitFor(
      async () => {
        const l = await unary<PrioritizedEndpointList>((cb) =>
          c.getPrioritizedEndpoints({ service: 'svc' }, cb),
        ).catch(() => undefined);
        return l && l.endpoints.length === 3 && l.endpoints.every((e) => e.score > 0)
          ? l
          : undefined;
      },
      3000,
      'three scored endpoints',
    );
    expect(list.endpoints.map((e) => e.endpointId)).toEqual(['idle', 'mid', 'busy']);
    const total = list.endpoints.reduce((s, e) => s + e.weight, 0);
    expect(total).toBeCloseTo(1, 6);
    expect(list.endpoints[0]!.parts?.forecaster).toBeTruthy();
    expect(list.endpoints[0]!.parts?.predictedUtilization).toBeCloseTo(0.1, 2);
    expect(list.version).toBeGreaterThan(0);
    expect(list.computedAt).toBeInstanceOf(Date);
  });

  it('answers NOT_FOUND for an unknown service', async () => {
    plane = await startTestPlane();
    const err = await unary<PrioritizedEndpointList>((cb) =>
      client().getPrioritizedEndpoints(
        {
          service: 'nope',
        },
        cb,
      ),
    ).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it('streams the current list then each new version to watchers', async () => {
    plane = await startTestPlane({ lps: { scoreInterval: 0.05 } });
    const a = agent('a', 0.2);
    await waitFor(() => plane!.lps.lists.get('svc')?.endpoints.length === 1, 3000, 'first list');
    const seen: PrioritizedEndpointList[] = [];
    const call = client().watchPrioritizedEndpoints({ services: ['svc'] });
    closers.push(() => call.cancel());
    call.on('data', (l: PrioritizedEndpointList) => seen.push(l));
    call.on('error', () => undefined);
    await waitFor(() => seen.length >= 1, 3000, 'initial list');
    agent('b', 0.1);
    await waitFor(() => seen.some((l) => l.endpoints.length === 2), 3000, 'list with b');
    a.sample({ sequence: 2, cpuUsage: 0.95 });
    const last = await waitFor(
      () => {
        const l = seen[seen.length - 1]!;
        return l.endpoints.length === 2 && l.endpoints[0]!.endpointId === 'b' ? l : undefined;
      },
      3000,
      'b first',
    );
    const versions = seen.map((l) => l.version);
    expect([...versions].sort((x, y) => x - y)).toEqual(versions);
    expect(last.service).toBe('svc');
  });

  it('changes the monitoring interval of agents and validates its bounds', async () => {
    plane = await startTestPlane({ lps: { minInterval: 0.5, maxInterval: 60 } });
    const a = agent('a', 0.2);
    const b = agent('b', 0.2);
    await a.waitMessage((m) => m.config !== undefined);
    const c = client();
    const res = await unary<SetMonitoringIntervalResponse>((cb) =>
      c.setMonitoringInterval(
        {
          service: 'svc',
          endpointIds: [],
          monitoringInterval: { seconds: 5, nanos: 0 },
        },
        cb,
      ),
    );
    expect(res.endpointIds.sort()).toEqual(['a', 'b']);
    for (const s of [a, b]) await s.waitMessage((m) => m.config?.monitoringInterval?.seconds === 5);
    const tooShort = await unary<SetMonitoringIntervalResponse>((cb) =>
      c.setMonitoringInterval(
        {
          service: '',
          endpointIds: ['a'],
          monitoringInterval: { seconds: 0, nanos: 1_000_000 },
        },
        cb,
      ),
    ).catch((e: grpc.ServiceError) => e);
    expect((tooShort as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((tooShort as grpc.ServiceError).details).toMatch(/between 0.5 s and 60 s/);
    const unknown = await unary<SetMonitoringIntervalResponse>((cb) =>
      c.setMonitoringInterval(
        {
          service: '',
          endpointIds: ['a', 'ghost'],
          monitoringInterval: { seconds: 2, nanos: 0 },
        },
        cb,
      ),
    ).catch((e: grpc.ServiceError) => e);
    expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    expect((unknown as grpc.ServiceError).details).toContain('ghost');
  });

  it('lists endpoints with their state and latest sample', async () => {
    plane = await startTestPlane();
    const a = agent('a', 0.25);
    await a.waitMessage((m) => m.ack?.lastSequence === 1);
    const c = client();
    const res = await unary<ListEndpointsResponse>((cb) => c.listEndpoints({ service: 'svc' }, cb));
    expect(res.endpoints).toHaveLength(1);
    expect(res.endpoints[0]).toMatchObject({
      endpointId: 'a',
      connected: true,
      lastSequence: 1,
      samplesStored: 1,
    });
    expect(res.endpoints[0]!.state).toBe(EndpointState.ENDPOINT_STATE_ACTIVE);
    expect(res.endpoints[0]!.latest?.cpuUsage).toBeCloseTo(0.25);
  });
});
