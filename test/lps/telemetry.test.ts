import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import type { AgentHello } from '../../src/gen/augur/v1/telemetry.js';
import { RawAgentStream } from '../support/raw-agent.js';

let plane: TestPlane | undefined;
const streams: RawAgentStream[] = [];

function agent(): RawAgentStream {
  const s = new RawAgentStream(plane!.grpcAddress);
  streams.push(s);
  return s;
}

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await plane?.dispose();
  plane = undefined;
});

describe('Telemetry/Report ingest', () => {
  it('stores samples from several agents in order and acks the last sequence', async () => {
    plane = await startTestPlane();
    const agents = ['a', 'b', 'c'].map((id) => {
      const s = agent();
      s.hello({ endpointId: id, port: 9000 + id.charCodeAt(0) });
      return s;
    });
    for (let seq = 1; seq <= 20; seq++) {
      agents.forEach((s, i) => s.sample({ sequence: seq, cpuUsage: (seq + i) / 100 }));
    }
    for (const s of agents) await s.waitMessage((m) => m.ack?.lastSequence === 20);
    for (const [i, id] of ['a', 'b', 'c'].entries()) {
      const r = plane.lps.store.get(id)!;
      expect(r.samplesStored).toBe(20);
      expect(Array.from(r.series.column('sequence'))).toEqual(
        Array.from({ length: 20 }, (_, k) => k + 1),
      );
      expect(r.series.at('cpu')).toBeCloseTo((20 + i) / 100);
    }
  });

  it('answers the hello with the monitoring interval and the last stored sequence', async () => {
    plane = await startTestPlane({ lps: { defaultInterval: 2 } });
    const s = agent();
    s.hello({ requestedInterval: { seconds: 0, nanos: 500_000_000 } });
    const config = await s.waitMessage((m) => m.config !== undefined);
    expect(config.config!.monitoringInterval).toEqual({ seconds: 0, nanos: 500_000_000 });
    await s.waitMessage((m) => m.ack?.lastSequence === 0);
  });

  const badSamples: Array<[string, Record<string, unknown>, string, string]> = [
    ['cpu above 1', { cpuUsage: 1.5 }, 'cpu_usage', 'OUT_OF_RANGE'],
    ['negative memory', { memoryUsage: -0.1 }, 'memory_usage', 'OUT_OF_RANGE'],
    ['NaN cpu', { cpuUsage: NaN }, 'cpu_usage', 'NOT_FINITE'],
    ['infinite network', { networkIo: Infinity }, 'network_io', 'NOT_FINITE'],
    ['negative response time', { responseTime: -1 }, 'response_time', 'OUT_OF_RANGE'],
    ['another endpoint id', { endpointId: 'someone-else' }, 'endpoint_id', 'UNKNOWN_ENDPOINT'],
    ['no timestamp', { timestamp: undefined }, 'timestamp', 'MISSING'],
    [
      'timestamp in the future',
      { timestamp: new Date(Date.now() + 3_600_000) },
      'timestamp',
      'TIMESTAMP_SKEW',
    ],
    [
      'timestamp far in the past',
      { timestamp: new Date(Date.now() - 86_400_000) },
      'timestamp',
      'TIMESTAMP_TOO_OLD',
    ],
    ['sequence 0', { sequence: 0 }, 'sequence', 'MISSING'],
    // Sequence poisoning: a sample near 2^53 used to leave the real agent nowhere to continue.
    ['a sequence past 2^50', { sequence: 2 ** 53 - 1 }, 'sequence', 'OUT_OF_RANGE'],
    [
      'a sequence further ahead than its time allows',
      { sequence: 50_000 },
      'sequence',
      'OUT_OF_RANGE',
    ],
  ];

  it.each(badSamples)(
    'rejects a sample with %s, naming the field, and keeps the stream',
    async (_n, over, field, code) => {
      plane = await startTestPlane();
      const s = agent();
      s.hello();
      s.sample({ sequence: 1 });
      s.sample({ sequence: 2, ...over });
      s.sample({ sequence: 3 });
      const err = await s.waitMessage((m) => m.error !== undefined);
      expect(err.error).toMatchObject({ field, code });
      expect(err.error!.message.length).toBeGreaterThan(10);
      await s.waitMessage((m) => m.ack?.lastSequence === 3);
      expect(s.status).toBeUndefined();
      expect(plane.lps.store.get('ep-1')!.samplesStored).toBe(2);
      const metrics = await plane.registry.getSingleMetricAsString(
        'augur_lps_samples_rejected_total',
      );
      expect(metrics).toContain(`reason="${code}"`);
    },
  );

  it('rejects a timestamp that goes backwards', async () => {
    plane = await startTestPlane();
    const s = agent();
    s.hello();
    const t = Date.now();
    s.sample({ sequence: 1, timestamp: new Date(t) });
    s.sample({ sequence: 2, timestamp: new Date(t - 5000) });
    const err = await s.waitMessage((m) => m.error !== undefined);
    expect(err.error).toMatchObject({ field: 'timestamp', code: 'TIMESTAMP_NOT_INCREASING' });
  });

  it('drops replayed duplicates without counting them twice', async () => {
    plane = await startTestPlane();
    const s = agent();
    s.hello();
    for (let seq = 1; seq <= 5; seq++) s.sample({ sequence: seq });
    s.send({ batch: { samples: [3, 4, 5, 6, 7].map((seq) => ({ ...sampleAt(seq) })) } });
    await s.waitMessage((m) => m.ack?.lastSequence === 7);
    expect(plane.lps.store.get('ep-1')!.samplesStored).toBe(7);
    expect(s.received.some((m) => m.error)).toBe(false);
    const dup = await plane.registry.getSingleMetricAsString('augur_lps_samples_duplicate_total');
    expect(dup).toMatch(/augur_lps_samples_duplicate_total 3$/m);
  });

  it('ends a stream that sends samples before its hello with FAILED_PRECONDITION', async () => {
    plane = await startTestPlane();
    const s = agent();
    s.sample({ sequence: 1 });
    const status = await s.waitStatus();
    expect(status.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(status.details).toMatch(/before the hello/);
  });

  it('ends a second live stream for the same endpoint with ALREADY_EXISTS', async () => {
    plane = await startTestPlane();
    const first = agent();
    first.hello();
    await first.waitMessage((m) => m.config !== undefined);
    const second = agent();
    second.hello();
    const status = await second.waitStatus();
    expect(status.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(status.details).toContain('ep-1');
    first.sample({ sequence: 1 });
    await first.waitMessage((m) => m.ack?.lastSequence === 1);
  });

  it('ends a stream whose hello is invalid with INVALID_ARGUMENT naming the field', async () => {
    plane = await startTestPlane();
    const s = agent();
    s.hello({ port: 70000 });
    const status = await s.waitStatus();
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toContain('hello.port');
  });

  it('bounds what a hello carries and quotes at most 64 characters of a bad value', async () => {
    plane = await startTestPlane();
    const cases: Array<[Partial<AgentHello>, RegExp]> = [
      [
        { labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
        /at most 32 labels, got 33/,
      ],
      [{ labels: { team: 'x'.repeat(100_000) } }, /at most 256 characters, got 100000/],
      [
        { locality: { region: 'r'.repeat(200), zone: '', subZone: '' } },
        /locality\.region is at most 128 characters/,
      ],
      // A long id used to be echoed whole into the status and the log (a message over
      // lps.maxMessageBytes, 1 MiB, is refused by gRPC before it is read).
      [{ endpointId: `${'x'.repeat(100_000)}!` }, /\(100001 characters\)/],
    ];
    for (const [over, why] of cases) {
      const s = agent();
      s.hello(over);
      const status = await s.waitStatus(10_000);
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toMatch(why);
      expect(status.details.length).toBeLessThan(400);
    }
    expect(plane.lps.store.get('ep-1')).toBeUndefined();
    // Within the bounds, the same hello is taken.
    const ok = agent();
    ok.hello({ labels: { team: 'x'.repeat(256) } });
    ok.sample({ sequence: 1 });
    await ok.waitMessage((m) => m.ack?.lastSequence === 1);
  });

  it('marks a silent endpoint stale with score 0, and active again when it reports', async () => {
    plane = await startTestPlane({
      lps: { defaultInterval: 0.1, minInterval: 0.05, scoreInterval: 0.05, staleAfterIntervals: 3 },
    });
    const s = agent();
    s.hello();
    let seq = 0;
    s.sample({ sequence: ++seq });
    const live = await waitFor(
      () => {
        const e = plane!.lps.lists.get('svc')?.endpoints[0];
        return e && e.score > 0 ? e : undefined;
      },
      3000,
      'a positive score',
    );
    expect(live.state).toBe(EndpointState.ENDPOINT_STATE_ACTIVE);
    const stale = await waitFor(
      () => {
        const e = plane!.lps.lists.get('svc')?.endpoints[0];
        return e?.state === EndpointState.ENDPOINT_STATE_STALE ? e : undefined;
      },
      3000,
      'stale',
    );
    expect(stale.score).toBe(0);
    expect(stale.weight).toBe(0);
    s.sample({ sequence: ++seq });
    const back = await waitFor(
      () => {
        const e = plane!.lps.lists.get('svc')?.endpoints[0];
        return e?.state === EndpointState.ENDPOINT_STATE_ACTIVE && e.score > 0 ? e : undefined;
      },
      3000,
      'active again',
    );
    expect(back.score).toBeGreaterThan(0);
  });

  it('acknowledges the samples of a goodbye sent right behind them before ending the stream', async () => {
    // Durable acks (the default) wait for the sample log's fsync; the half-close must not end
    // the call before they are sent, or the agent cannot tell its last samples were stored.
    plane = await startTestPlane();
    const s = agent();
    s.hello();
    for (let seq = 1; seq <= 5; seq++) s.sample({ sequence: seq });
    s.end();
    const status = await s.waitStatus(10_000);
    expect(status.code).toBe(grpc.status.OK);
    expect(Math.max(0, ...s.received.map((m) => m.ack?.lastSequence ?? 0))).toBe(5);
    expect(plane.lps.store.get('ep-1')!.samplesStored).toBe(5);
  });

  it('marks an endpoint draining when its agent closes the stream cleanly', async () => {
    plane = await startTestPlane({ lps: { scoreInterval: 0.05 } });
    const s = agent();
    s.hello();
    s.sample({ sequence: 1 });
    await s.waitMessage((m) => m.ack?.lastSequence === 1);
    s.end();
    const e = await waitFor(
      () => {
        const x = plane!.lps.lists.get('svc')?.endpoints[0];
        return x?.state === EndpointState.ENDPOINT_STATE_DRAINING ? x : undefined;
      },
      3000,
      'draining',
    );
    expect(e.score).toBe(0);
  });
});

function sampleAt(sequence: number) {
  return {
    endpointId: '',
    cpuUsage: 0.1,
    memoryUsage: 0.1,
    networkIo: 0,
    networkCapacity: 0,
    responseTime: 0.01,
    timestamp: new Date(),
    sequence,
    health: 1,
    requestRate: 0,
  };
}
