import * as grpc from '@grpc/grpc-js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
} from '../../src/gen/augur/v1/telemetry.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { captureLogger } from '../support/logs.js';

/*
 * Two of issue 12's attacks on the Telemetry API, as regression tests on a real augur serve:
 *
 * - the 1 MB id: a hello whose endpoint id is 1 MiB was echoed into the log and the status, and
 *   the client's connection stalled;
 * - the endpoint-id flood: 17,854 fake ids took RSS from 177 MB to 1.7 GB. Now the store holds at
 *   most lps.maxEndpoints records (src/lps/README.md, "Memory under an endpoint-id flood"): past
 *   it, a hello costs nothing that stays.
 */

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
});

type Call = grpc.ClientDuplexStream<AgentMessage, ControlMessage>;

/** Says hello on a new stream of `client`; resolves 'taken' (config received) or the status. */
function hello(
  client: InstanceType<typeof TelemetryClient>,
  endpointId: string,
  labels: Record<string, string> = {},
): Promise<{ outcome: 'taken' | grpc.StatusObject; call: Call }> {
  return new Promise((resolve) => {
    const call = client.report();
    call.on('error', () => undefined);
    call.on('data', (m: ControlMessage) => {
      if (m.config) resolve({ outcome: 'taken', call });
    });
    call.on('status', (s: grpc.StatusObject) => resolve({ outcome: s, call }));
    call.write({
      hello: {
        endpointId,
        service: 'svc',
        address: '127.0.0.1',
        port: 9000,
        labels,
        agentVersion: 'test',
      },
    });
  });
}

describe('a 1 MB endpoint id', () => {
  it('gets a short INVALID_ARGUMENT, stays out of the log, and the same connection goes on', async () => {
    const { logger, lines } = captureLogger('debug');
    plane = await startTestPlane({}, undefined, logger);
    const client = new TelemetryClient(plane.grpcAddress, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    // 1 MB fits lps.maxMessageBytes (1 MiB) and is refused by the id rule; 1 MiB is past the
    // message limit and refused before it is decoded.
    const cases: Array<[number, grpc.status, string]> = [
      [1_000_000, grpc.status.INVALID_ARGUMENT, 'endpoint_id must be 1-128 characters'],
      [1 << 20, grpc.status.RESOURCE_EXHAUSTED, 'message larger than max'],
    ];
    for (const [length, code, says] of cases) {
      const bad = await hello(client, 'i'.repeat(length));
      closers.push(() => bad.call.cancel());
      expect(bad.outcome).not.toBe('taken');
      const status = bad.outcome as grpc.StatusObject;
      expect([length, status.code]).toEqual([length, code]);
      expect(status.details).toContain(says);
      expect(status.details.length).toBeLessThan(400);

      // The same client, so the same HTTP/2 connection: a good hello is taken right after.
      const good = await hello(client, `web-${length}`);
      closers.push(() => good.call.cancel());
      expect(good.outcome).toBe('taken');
    }
    expect(plane.lps.store.size).toBe(2);

    expect(lines.length).toBeGreaterThan(0);
    const longest = Math.max(...lines.map((l) => l.length));
    expect(longest).toBeLessThan(2_000);
    expect(lines.some((l) => l.includes('i'.repeat(200)))).toBe(false);
  });
});

/** The heap in use after a full collection, bytes. */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('an endpoint-id flood', () => {
  it('holds at most lps.maxEndpoints records, refuses the rest with RESOURCE_EXHAUSTED, and keeps nothing of them', async () => {
    const cap = 200;
    plane = await startTestPlane({
      lps: { maxEndpoints: cap, maxEndpointsPerService: cap },
      logLevel: 'silent',
    });
    // Every hello as large as the limits allow: 32 labels, keys of 128 and values of 256.
    const labels = (i: number) =>
      Object.fromEntries(
        Array.from({ length: 32 }, (_, k) => [
          `${String(k).padStart(2, '0')}${'k'.repeat(126)}`,
          `${i}`.padEnd(256, 'v'),
        ]),
      );
    const clients = Array.from(
      { length: 4 },
      () => new TelemetryClient(plane!.grpcAddress, grpc.credentials.createInsecure()),
    );
    closers.push(() => clients.forEach((c) => c.close()));
    /** Says hello for ids from..to-1, four at a time, and drops each stream at once. */
    const flood = async (from: number, to: number) => {
      const outcomes: Array<'taken' | grpc.status> = [];
      for (let i = from; i < to; i += clients.length) {
        const round = await Promise.all(
          clients.map((c, k) => (i + k < to ? hello(c, `fake-${i + k}`, labels(i + k)) : null)),
        );
        for (const r of round) {
          if (!r) continue;
          r.call.cancel();
          outcomes.push(r.outcome === 'taken' ? 'taken' : r.outcome.code);
        }
      }
      return outcomes;
    };

    const before = heapAfterGc();
    const first = await flood(0, cap);
    expect(first.every((o) => o === 'taken')).toBe(true);
    await waitFor(() => plane!.lps.store.size === cap, 5000, `${cap} records`);
    const atCap = heapAfterGc();

    const rest = await flood(cap, cap * 3);
    expect(rest.every((o) => o === grpc.status.RESOURCE_EXHAUSTED)).toBe(true);
    expect(plane.lps.store.size).toBe(cap);
    const after = heapAfterGc();

    const perRecord = (atCap - before) / cap;
    const perRefused = (after - atCap) / (cap * 2);
    console.log(
      `endpoint-id flood: ${(perRecord / 1024).toFixed(1)} KB of heap per held record (bound 64 KB), ` +
        `${(perRefused / 1024).toFixed(2)} KB per refused hello (bound: a quarter of a held record)`,
    );
    // The documented bound is 64 KB a record (a full ring, scored, measured 63 KB); one with the
    // largest hello and no sample measured 27-33 KB (labels, the ring, the stream's state); a
    // refused hello would cost as much again if anything of it stayed. What a refused one leaves
    // is the heap's noise (grpc-js buffers, counters) spread over 400 hellos: 1-3 KB measured,
    // so the bound is a quarter of what a kept record costs, not an absolute figure.
    expect(perRecord).toBeLessThan(64 * 1024);
    expect(perRefused).toBeLessThan(perRecord / 4);
  }, 120_000);
});
