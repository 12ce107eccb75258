import { describe, expect, it } from 'vitest';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import type { EndpointData } from '../../src/gen/augur/v1/telemetry.js';
import { SampleBuffer } from '../../src/agent/sample-buffer.js';
import { DEFAULT_BACKOFF, backoffDelaySeconds } from '../../src/agent/telemetry-client.js';
import { parseLocality } from '../../src/agent/cli.js';
import { Agent, alignedDelay, type AgentOptions } from '../../src/agent/agent.js';

const sample = (sequence: number): EndpointData => ({
  endpointId: 'e',
  cpuUsage: 0,
  memoryUsage: 0,
  networkIo: 0,
  responseTime: 0,
  timestamp: new Date(),
  sequence,
  networkCapacity: 0,
  health: ProbeHealth.PROBE_HEALTH_SERVING,
  requestRate: 0,
});

describe('SampleBuffer', () => {
  it('drops the oldest sample when full and counts it', () => {
    const b = new SampleBuffer(3);
    for (let i = 1; i <= 5; i++) b.push(sample(i));
    expect(b.sequences()).toEqual([3, 4, 5]);
    expect(b.dropped).toBe(2);
    expect(b.size).toBe(3);
  });

  it('forgets acknowledged samples, including across the ring wrap', () => {
    const b = new SampleBuffer(4);
    for (let i = 1; i <= 6; i++) b.push(sample(i));
    expect(b.ackThrough(4)).toBe(2); // 3 and 4 of the buffered 3..6
    expect(b.sequences()).toEqual([5, 6]);
    b.push(sample(7));
    expect(b.ackThrough(100)).toBe(3);
    expect(b.size).toBe(0);
    expect(b.ackThrough(100)).toBe(0);
  });

  it('removes one rejected sample and keeps the order of the rest', () => {
    const b = new SampleBuffer(4);
    for (let i = 1; i <= 6; i++) b.push(sample(i)); // holds 3..6 across the wrap
    expect(b.remove(4)).toBe(true);
    expect(b.remove(42)).toBe(false);
    expect(b.sequences()).toEqual([3, 5, 6]);
    b.push(sample(7));
    expect(b.sequences()).toEqual([3, 5, 6, 7]);
  });

  it('yields the buffer in bounded chunks, oldest first', () => {
    const b = new SampleBuffer(10);
    for (let i = 1; i <= 7; i++) b.push(sample(i));
    expect([...b.chunks(3)].map((c) => c.map((s) => s.sequence))).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7],
    ]);
    expect(() => new SampleBuffer(0)).toThrow(RangeError);
  });
});

describe('ticks aligned to the clock', () => {
  it('waits for the next whole multiple of the interval, at least half an interval after the last tick', () => {
    expect(alignedDelay(10_250, 10_000, 1000)).toBe(750);
    // A timer that fired just before the multiple does not tick again just after it.
    expect(alignedDelay(11_000.5, 10_999.5, 1000)).toBe(999.5);
    // A tick that overran its interval skips the multiple it missed.
    expect(alignedDelay(11_200, 10_000, 1000)).toBe(800);
    // A longer interval: multiples of 5 s.
    expect(alignedDelay(12_345, 10_000, 5000)).toBe(2655);
    // Sub-second intervals.
    expect(alignedDelay(1_000_030, 1_000_000, 100)).toBe(70);
  });
});

describe('reconnect backoff', () => {
  const b = { ...DEFAULT_BACKOFF, initialSeconds: 0.5, maxSeconds: 8 };

  it('grows the ceiling exponentially up to the bound, with full jitter below it', () => {
    const top = (attempt: number) => backoffDelaySeconds(attempt, b, () => 0.999999);
    expect(top(0)).toBeCloseTo(0.5, 4);
    expect(top(1)).toBeCloseTo(1, 4);
    expect(top(3)).toBeCloseTo(4, 4);
    expect(top(4)).toBeCloseTo(8, 4);
    expect(top(30)).toBeCloseTo(8, 4);
    expect(backoffDelaySeconds(5, b, () => 0)).toBe(0);
    expect(backoffDelaySeconds(5, b, () => 0.25)).toBeCloseTo(2, 10);
  });

  it('by default never waits more than 2 s, so an agent is back within seconds of its LPS', () => {
    const longest = Math.max(
      ...Array.from({ length: 40 }, (_, a) =>
        backoffDelaySeconds(a, DEFAULT_BACKOFF, () => 0.999999),
      ),
    );
    expect(longest).toBeLessThanOrEqual(2);
    expect(longest).toBeGreaterThan(1.99);
  });
});

describe('agent flags', () => {
  it('parses a locality and refuses a malformed one', () => {
    expect(parseLocality('eu-west-1/eu-west-1a/rack7')).toEqual({
      region: 'eu-west-1',
      zone: 'eu-west-1a',
      subZone: 'rack7',
    });
    expect(parseLocality('us-east-1')).toEqual({ region: 'us-east-1', zone: '', subZone: '' });
    expect(() => parseLocality('a//b')).toThrow(/region/);
    expect(() => parseLocality('a/b/c/d')).toThrow(/region/);
  });
});

describe('agent options', () => {
  const base: AgentOptions = {
    lps: '127.0.0.1:18000',
    endpointId: 'shop-1',
    service: 'shop',
    address: '10.0.0.7:8080',
  };
  const start = (over: Partial<AgentOptions>) => Agent.start({ ...base, ...over });

  it('refuses what the LPS would refuse, before connecting, with a code and the rule', async () => {
    await expect(start({ endpointId: 'a b' })).rejects.toMatchObject({ code: 'BAD_ENDPOINT_ID' });
    await expect(start({ endpointId: 'x'.repeat(129) })).rejects.toMatchObject({
      code: 'BAD_ENDPOINT_ID',
    });
    await expect(start({ service: 'shop/v2' })).rejects.toMatchObject({
      code: 'BAD_SERVICE',
      message: expect.stringMatching(/A-Z a-z 0-9 \. _ -/),
    });
    await expect(start({ address: '10.0.0.7' })).rejects.toMatchObject({ code: 'BAD_ADDRESS' });
    await expect(start({ address: '10.0.0.7:0' })).rejects.toMatchObject({ code: 'BAD_ADDRESS' });
    await expect(start({ address: ':8080' })).rejects.toMatchObject({
      code: 'BAD_ADDRESS',
      message: expect.stringMatching(/wildcard/),
    });
    await expect(start({ lps: 'nowhere' })).rejects.toMatchObject({ code: 'BAD_ADDRESS' });
    await expect(start({ intervalSeconds: 0 })).rejects.toMatchObject({ code: 'BAD_INTERVAL' });
    await expect(start({ bufferSize: 0 })).rejects.toMatchObject({ code: 'BAD_BUFFER' });
  });
});
