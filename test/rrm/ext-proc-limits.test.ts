import * as grpc from '@grpc/grpc-js';
import type http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatHostPort } from '../../src/common/address.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { PROCESS_PATH } from '../../src/rrm/ext-proc/http2-listener.js';
import { extProcCodec } from '../../src/rrm/ext-proc/messages.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { loadConfig } from '../../src/serve/config.js';
import { waitFor } from '../support/control-plane.js';
import { connect, framed, rawCall, type RawCallResult } from '../support/raw-grpc.js';
import {
  exchange,
  extProcClient,
  requestHeadersMessage,
  responseHeadersMessage,
} from './support/envoy-like-client.js';
import { StaticListSource } from './support/static-list-source.js';
import { captureLogger } from '../support/logs.js';

/*
 * The ext_proc fast path's limits against a hostile client (issue 12): every frame header checked
 * as it arrives, one budget for the bytes of partly received messages across all streams, a
 * deadline for a partial message, and a bad message among good ones answered after them; and on
 * both ext_proc addresses, a cap on the streams open at once (rrm.maxStreams).
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

/** An RRM with its own registry, on both ext_proc addresses, and the warnings it logged. */
interface CappedRrm {
  rrm: Rrm;
  host: GrpcHost;
  registry: ReturnType<typeof createRegistry>;
  addresses: { grpc: string; fast: string };
  logged: string[];
}

/** Starts a CappedRrm whose `rrm` settings are `limits` (over the shared list source). */
async function startCapped(limits: Record<string, number>): Promise<CappedRrm> {
  const { logger, lines: logged } = captureLogger('warn');
  const registry = createRegistry(false);
  const rrm = new Rrm({
    config: loadConfig({
      env: {},
      flags: {
        logLevel: 'silent',
        rrm: { defaultService: 'shop', extProcListen: '127.0.0.1:0', ...limits },
      },
    }),
    logger,
    registry,
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
  const host = new GrpcHost({ listen: '127.0.0.1:0' });
  rrm.register(host);
  const { port } = await host.start();
  const addresses = {
    grpc: `127.0.0.1:${port}`,
    fast: formatHostPort((await rrm.listenExtProc())!),
  };
  return { rrm, host, registry, addresses, logged };
}

/** augur_rrm_ext_proc_streams_refused_total for one limit. */
async function refusedFor(registry: CappedRrm['registry'], limit: string): Promise<number> {
  const text = await registry.getSingleMetricAsString('augur_rrm_ext_proc_streams_refused_total');
  const line = text.split('\n').find((l) => l.includes(`limit="${limit}"`));
  return Number(/ (\d+)$/.exec(line ?? '')?.[1] ?? NaN);
}

describe('rrm.maxStreams', () => {
  /** A fresh RRM whose cap is 3, on both ext_proc addresses, and what it logged. */
  let capped: CappedRrm;
  let addresses: CappedRrm['addresses'];
  let logged: string[];
  const clients: Array<ReturnType<typeof extProcClient>> = [];
  const sessions: http2.ClientHttp2Session[] = [];

  beforeEach(async () => {
    capped = await startCapped({ maxStreams: 3 });
    ({ addresses, logged } = capped);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of sessions.splice(0)) s.destroy();
    await capped.rrm.stop();
    await capped.host.stop();
  });

  const open = () => capped.rrm.metrics.extProcStreams;
  const refused = () => refusedFor(capped.registry, 'rrm.maxStreams');
  const client = (address: string) => {
    const c = extProcClient(address);
    clients.push(c);
    return c;
  };
  const session = async (address: string) => {
    const s = await connect(address);
    sessions.push(s);
    return s;
  };

  /**
   * A routed request's stream as Envoy holds it (a grpc-js client, its own connection): `ready`
   * once the request headers are answered; `release` sends the response headers, after which the
   * RRM closes it; `done`, the status it ended with.
   */
  function held(address: string) {
    const call = client(address).Process();
    const ready = new Promise<void>((resolve, reject) => {
      call.once('data', () => resolve());
      call.once('error', reject);
    });
    const done = new Promise<grpc.status>((resolve) =>
      call.on('status', (st: grpc.StatusObject) => resolve(st.code)),
    );
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.write(requestHeadersMessage({}));
    const release = () => call.write(responseHeadersMessage({ status: 200 }));
    return { call, ready, release, done };
  }

  /** A stream that sends nothing and stays open until its connection goes. */
  async function silent(address: string) {
    const s = await session(address);
    const call = rawCall(s, PROCESS_PATH, [], { end: false, deadlineMs: 60_000 });
    return { close: () => s.destroy(), call };
  }

  const refusal = {
    code: grpc.status.RESOURCE_EXHAUSTED,
    details: 'augur has 3 ext_proc streams open, its limit (rrm.maxStreams 3); try again later',
  };

  for (const transport of ['grpc', 'fast'] as const) {
    const name = transport === 'grpc' ? 'the gRPC address (grpc-js)' : 'rrm.extProcListen';
    it(`on ${name}: a 4th stream gets RESOURCE_EXHAUSTED as it starts, counted and logged once; streams ended every way make room`, async () => {
      const address = addresses[transport];
      const cancelled = held(address);
      const finished = held(address);
      await Promise.all([cancelled.ready, finished.ready]);
      const dropped = await silent(address);
      await waitFor(() => open() === 3, 5000, 'three streams open');

      // Past the cap, from a grpc-js client and from a raw one, each on its own connection.
      await expect(exchange(client(address), {})).rejects.toMatchObject(refusal);
      const raw = await rawCall(await session(address), PROCESS_PATH, [requestHeaders()], {
        end: false,
      });
      expect(raw).toMatchObject({ code: refusal.code, message: refusal.details, hung: false });
      expect(await refused()).toBe(2);
      expect(open()).toBe(3);
      const warnings = logged.filter((l) => l.includes('rrm.maxStreams'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0]!)).toMatchObject({
        limit: 'rrm.maxStreams',
        refusedSinceLastLog: 1,
      });

      // Cancelled (RST_STREAM): its place goes to a new stream, which is answered (and closed
      // the way Envoy closes it: half-close, then reset).
      cancelled.call.cancel();
      expect(await cancelled.done).toBe(grpc.status.CANCELLED);
      await waitFor(() => open() === 2, 5000, 'the cancelled stream let go');
      expect(await exchange(client(address), {})).toMatchObject({ response: 'request_headers' });
      // Its connection gone, without a word on the stream itself.
      dropped.close();
      expect((await dropped.call).code).toBeUndefined();
      await waitFor(() => open() === 1, 5000, 'the dropped connection’s stream let go');
      // Answered to the end: the RRM closes it with OK.
      finished.release();
      expect(await finished.done).toBe(grpc.status.OK);
      await waitFor(() => open() === 0, 5000, 'the finished stream let go');

      // Ended with an error (an undecodable message), and half-closed with nothing sent.
      const s = await session(address);
      const bad = await rawCall(s, PROCESS_PATH, [framed(Buffer.from([0x12, 100, 1]))]);
      expect(bad.code).not.toBe(grpc.status.OK);
      expect(bad.code).toBeDefined();
      const empty = await rawCall(s, PROCESS_PATH, []);
      expect(empty.code).toBe(grpc.status.OK);
      await waitFor(() => open() === 0, 5000, 'the failed and empty streams let go');

      // The count is exact again: three fit, the fourth does not.
      const again = [held(address), held(address), held(address)];
      await Promise.all(again.map((h) => h.ready));
      expect(open()).toBe(3);
      await expect(exchange(client(address), {})).rejects.toMatchObject(refusal);
      expect(await refused()).toBe(3);
      for (const h of again) h.release();
      expect(await Promise.all(again.map((h) => h.done))).toEqual(again.map(() => grpc.status.OK));
      await waitFor(() => open() === 0, 5000, 'every stream let go');
    });
  }

  it('counts the streams of both addresses together', async () => {
    const streams = [held(addresses.grpc), held(addresses.grpc), held(addresses.fast)];
    await Promise.all(streams.map((h) => h.ready));
    expect(open()).toBe(3);
    for (const address of [addresses.grpc, addresses.fast]) {
      await expect(exchange(client(address), {})).rejects.toMatchObject(refusal);
    }
    expect(await refused()).toBe(2);
    streams[2]!.release();
    await streams[2]!.done;
    await waitFor(() => open() === 2, 5000, 'the fast-path stream let go');
    expect(await exchange(client(addresses.grpc), {})).toMatchObject({
      response: 'request_headers',
    });
    for (const h of streams.slice(0, 2)) h.release();
    await Promise.all(streams.slice(0, 2).map((h) => h.done));
  });
});

describe('rrm.maxStreamsPerClient', () => {
  /** A fresh RRM: 10 streams in all, 2 per client; 127.0.0.1 and 127.0.0.2 are two clients. */
  let capped: CappedRrm;
  let addresses: CappedRrm['addresses'];
  let logged: string[];
  const sessions: http2.ClientHttp2Session[] = [];

  beforeEach(async () => {
    capped = await startCapped({ maxStreams: 10, maxStreamsPerClient: 2 });
    ({ addresses, logged } = capped);
  });

  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await capped.rrm.stop();
    await capped.host.stop();
  });

  const open = () => capped.rrm.metrics.extProcStreams;
  const refused = (limit: string) => refusedFor(capped.registry, limit);
  const session = async (address: string, from: string) => {
    const s = await connect(address, from);
    sessions.push(s);
    return s;
  };
  /** A stream from `from` that sends nothing and stays open until its connection goes. */
  async function silent(address: string, from: string) {
    const s = await session(address, from);
    const call = rawCall(s, PROCESS_PATH, [], { end: false, deadlineMs: 60_000 });
    return { close: () => s.destroy(), call };
  }
  /** A request's headers from `from`, on a connection of its own: its answer, or its refusal. */
  async function ask(address: string, from: string): Promise<RawCallResult> {
    return rawCall(await session(address, from), PROCESS_PATH, [requestHeaders()], {
      end: false,
      settleOnData: true,
    });
  }
  const refusal = (client: string) => ({
    code: grpc.status.RESOURCE_EXHAUSTED,
    message: `client ${client} has 2 ext_proc streams open, the limit (rrm.maxStreamsPerClient 2); try again later`,
    hung: false,
  });

  for (const transport of ['grpc', 'fast'] as const) {
    const name = transport === 'grpc' ? 'the gRPC address (grpc-js)' : 'rrm.extProcListen';
    it(`on ${name}: a client's 3rd stream gets RESOURCE_EXHAUSTED naming it, counted and logged; another client is served; an ended stream makes room`, async () => {
      const address = addresses[transport];
      const first = await silent(address, '127.0.0.1');
      const second = await silent(address, '127.0.0.1');
      await waitFor(() => open() === 2, 5000, 'two streams open');

      expect(await ask(address, '127.0.0.1')).toMatchObject(refusal('127.0.0.1'));
      expect(await refused('rrm.maxStreamsPerClient')).toBe(1);
      expect(await refused('rrm.maxStreams')).toBe(0);
      const warnings = logged.filter((l) => l.includes('rrm.maxStreamsPerClient'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0]!)).toMatchObject({
        limit: 'rrm.maxStreamsPerClient',
        refusedSinceLastLog: 1,
      });

      // Another client has its own two places.
      const other = await ask(address, '127.0.0.2');
      expect(other.code).toBeUndefined();
      expect(other.bodyBytes).toBeGreaterThan(0);
      await silent(address, '127.0.0.2');
      await silent(address, '127.0.0.2');
      await waitFor(() => open() === 4, 5000, 'four streams open');
      expect(await ask(address, '127.0.0.2')).toMatchObject(refusal('127.0.0.2'));
      expect(await refused('rrm.maxStreamsPerClient')).toBe(2);
      expect(capped.rrm.extProc.clientsOpen).toBe(2);

      // The first client's connection gone: its place comes back.
      first.close();
      await first.call;
      await waitFor(() => open() === 3, 5000, 'the dropped stream let go');
      const again = await ask(address, '127.0.0.1');
      expect(again.code).toBeUndefined();
      expect(again.bodyBytes).toBeGreaterThan(0);

      // Every stream ended: no client is kept.
      second.close();
      for (const s of sessions.splice(0)) s.destroy();
      await waitFor(() => open() === 0, 5000, 'every stream let go');
      expect(capped.rrm.extProc.clientsOpen).toBe(0);
    });
  }

  it("counts a client's streams on both addresses together", async () => {
    await silent(addresses.grpc, '127.0.0.1');
    await silent(addresses.fast, '127.0.0.1');
    await waitFor(() => open() === 2, 5000, 'two streams open');
    for (const address of [addresses.grpc, addresses.fast]) {
      expect(await ask(address, '127.0.0.1')).toMatchObject(refusal('127.0.0.1'));
    }
    expect(await refused('rrm.maxStreamsPerClient')).toBe(2);
  });
});

describe('rrm.maxStreams in the configuration', () => {
  it('defaults to 10,000 (5,000 per client) and refuses a value that is not a positive integer, naming the setting', () => {
    expect(loadConfig({ env: {}, flags: {} }).rrm.maxStreams).toBe(10_000);
    expect(loadConfig({ env: {}, flags: {} }).rrm.maxStreamsPerClient).toBe(5_000);
    for (const bad of [0, -1, 2.5, '10']) {
      expect(() => loadConfig({ env: {}, flags: { rrm: { maxStreams: bad } } })).toThrow(
        /invalid configuration: rrm\.maxStreams: /,
      );
      expect(() => loadConfig({ env: {}, flags: { rrm: { maxStreamsPerClient: bad } } })).toThrow(
        /invalid configuration: rrm\.maxStreamsPerClient: /,
      );
    }
  });
});
