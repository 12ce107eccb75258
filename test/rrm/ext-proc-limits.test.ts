import * as grpc from '@grpc/grpc-js';
import type http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHostPort } from '../../src/common/address.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { PROCESS_PATH } from '../../src/rrm/ext-proc/http2-listener.js';
import { extProcCodec } from '../../src/rrm/ext-proc/messages.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { loadConfig } from '../../src/serve/config.js';
import { waitFor } from '../support/control-plane.js';
import { connect, framed, rawCall, type RawCallResult } from '../support/raw-grpc.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The ext_proc fast path's limits against a hostile client (issue 12): every frame header checked
 * as it arrives, one budget for the bytes of partly received messages across all streams, a
 * deadline for a partial message, and a bad message among good ones answered after them.
 */

const MiB = 1 << 20;
const registry = createRegistry(false);
const source = new StaticListSource();
let rrm: Rrm;
let address: string;
let session: http2.ClientHttp2Session;
/** A second RRM whose partial-message deadline is 1 s, for the deadline. */
let quick: Rrm;
let quickAddress: string;

function startRrm(extProcPartialTimeout: number): Rrm {
  return new Rrm({
    config: loadConfig({
      env: {},
      flags: {
        logLevel: 'silent',
        rrm: {
          defaultService: 'shop',
          extProcListen: '127.0.0.1:0',
          // The defaults said out loud, but the deadline (10 s by default).
          extProcMaxMessageBytes: 4 * MiB,
          extProcPartialBudgetBytes: 16 * MiB,
          extProcPartialTimeout,
        },
      },
    }),
    logger: silentLogger,
    registry: extProcPartialTimeout === 1 ? createRegistry(false) : registry,
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
}

beforeAll(async () => {
  source.set('shop', [
    { endpointId: 'a', address: '10.0.0.1', port: 8080, score: 0.4 },
    { endpointId: 'b', address: '10.0.0.2', port: 8080, score: 0.9 },
  ]);
  rrm = startRrm(120);
  quick = startRrm(1);
  quickAddress = formatHostPort((await quick.listenExtProc())!);
  address = formatHostPort((await rrm.listenExtProc())!);
  session = await connect(address);
});

afterAll(async () => {
  session?.close();
  await rrm?.stop();
  await quick?.stop();
});

/** A ProcessingRequest with the request headers of GET /, framed. */
function requestHeaders(): Buffer {
  const { request } = extProcCodec();
  const message = request.fromObject({
    request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/') }] } },
  });
  return framed(request.encode(message).finish());
}

/** A frame header declaring `length` bytes, and the first `sent` of them. */
function partial(length: number, sent: number): Buffer {
  const out = Buffer.alloc(5 + sent, 0x0a);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  return out;
}

async function refusals(code: string): Promise<number> {
  const text = await registry.getSingleMetricAsString('augur_rrm_ext_proc_refused_streams_total');
  const m = new RegExp(`code="${code}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('ext_proc fast path limits', () => {
  it('refuses a compressed message at once, without waiting for the rest of the stream', async () => {
    const r = await rawCall(session, PROCESS_PATH, [framed(Buffer.from([1, 2, 3]), 1)], {
      end: false,
      deadlineMs: 10_000,
    });
    expect(r.hung).toBe(false);
    expect(r.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(r.message).toMatch(/compressed messages are not accepted/);
    expect(await refusals('UNIMPLEMENTED')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a frame that declares more than rrm.extProcMaxMessageBytes before its body comes', async () => {
    const r = await rawCall(session, PROCESS_PATH, [partial(4 * MiB + 1, 0)], {
      end: false,
      deadlineMs: 10_000,
    });
    expect(r.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(r.message).toBe(
      `message of ${4 * MiB + 1} bytes is larger than the limit of ${4 * MiB}`,
    );
  });

  it('40 half-sent 4 MiB messages: held bytes stay within the budget, past it refused, all returned', async () => {
    // One connection each (as an attacker would spread them), so no connection's own limits
    // (Node's maxSessionMemory) decide the outcome before augur's.
    const sessions = await Promise.all(Array.from({ length: 40 }, () => connect(address)));
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rrm.extProcPartialBytes)), 2);
    const results: RawCallResult[] = [];
    try {
      const calls = sessions.map((s) =>
        rawCall(s, PROCESS_PATH, [partial(4 * MiB, 2 * MiB)], {
          end: false,
          deadlineMs: 120_000,
        }).then((r) => results.push(r)),
      );
      // Every stream is either refused or holds its whole 2 MiB.
      await waitFor(
        () => {
          // A stream that holds its half holds the 5-byte prefix too.
          const held = rrm.extProcPartialBytes;
          const whole = 2 * MiB + 5;
          return held % whole === 0 && results.length + held / whole === 40;
        },
        60_000,
        'every half-sent message refused or held',
      );
      peak = Math.max(peak, rrm.extProcPartialBytes);
      expect(results.length).toBeGreaterThanOrEqual(32);
      for (const r of results) {
        expect(r.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
        expect(r.message).toMatch(/rrm\.extProcPartialBudgetBytes/);
      }
      expect(peak).toBeLessThanOrEqual(16 * MiB);
      // The clients go away: what their streams held is returned.
      for (const s of sessions) s.destroy();
      await Promise.all(calls);
    } finally {
      clearInterval(sampler);
      for (const s of sessions) s.destroy();
    }
    await waitFor(() => rrm.extProcPartialBytes === 0, 10_000, 'every partial byte returned');
    expect(await refusals('RESOURCE_EXHAUSTED')).toBeGreaterThanOrEqual(32);
  });

  it('refuses a message still partial after rrm.extProcPartialTimeout, and returns its bytes', async () => {
    const own = await connect(quickAddress);
    try {
      const r = await rawCall(own, PROCESS_PATH, [partial(4 * MiB, MiB)], {
        end: false,
        deadlineMs: 60_000,
      });
      expect(r.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(r.message).toMatch(
        /^a message was still partly received \(\d+ bytes\) after 1000 ms \(rrm\.extProcPartialTimeout\)$/,
      );
    } finally {
      own.destroy();
    }
    await waitFor(() => quick.extProcPartialBytes === 0, 10_000, 'the late message’s bytes');
  });

  it('gives back a partial message when its stream is cancelled', async () => {
    const r = await rawCall(session, PROCESS_PATH, [partial(4 * MiB, MiB)], {
      end: false,
      deadlineMs: 300,
    });
    // The client gave up (the deadline above) and cancelled the stream.
    expect(r.hung).toBe(true);
    await waitFor(() => rrm.extProcPartialBytes === 0, 10_000, 'the cancelled stream’s bytes');
  });

  it('answers the good messages of a chunk before a bad one, then ends with a status in the trailers', async () => {
    const cases: Array<[Buffer, number, RegExp]> = [
      [framed(Buffer.from([0x12, 100, 1])), grpc.status.INVALID_ARGUMENT, /ProcessingRequest/],
      [framed(Buffer.from([1]), 1), grpc.status.UNIMPLEMENTED, /compressed/],
      [partial(64 * MiB, 0), grpc.status.RESOURCE_EXHAUSTED, /larger than the limit/],
    ];
    for (const [bad, code, message] of cases) {
      for (const end of [true, false]) {
        const r = await rawCall(session, PROCESS_PATH, [Buffer.concat([requestHeaders(), bad])], {
          end,
          deadlineMs: 10_000,
        });
        expect(r.hung).toBe(false);
        expect(r.reset, JSON.stringify({ code, end, r })).toBe(false);
        expect(r.bodyBytes).toBeGreaterThan(0);
        expect(r.code).toBe(code);
        expect(r.message).toMatch(message);
      }
    }
  });
});
