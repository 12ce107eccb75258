import * as grpc from '@grpc/grpc-js';
import type http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPRESSED_REFUSED } from '../../src/common/grpc-hardening.js';
import { WatchPrioritizedEndpointsRequest } from '../../src/gen/augur/v1/load_prediction.js';
import { AgentMessage } from '../../src/gen/augur/v1/telemetry.js';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';
import { connect, framed, rawCall } from '../support/raw-grpc.js';

/*
 * The grpc-js hangs fuzzing found (issue 12), against a real control plane: each call now ends
 * with a status, and /metrics counts what the hardening did.
 */

const REPORT = '/augur.v1.Telemetry/Report';
const WATCH = '/augur.v1.LoadPrediction/WatchPrioritizedEndpoints';

let plane: TestPlane;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  plane = await startTestPlane();
  session = await connect(plane.grpcAddress);
});

afterAll(async () => {
  session?.close();
  await plane?.dispose();
});

const hello = (id: string): Buffer =>
  framed(
    AgentMessage.encode(
      AgentMessage.fromPartial({
        hello: { endpointId: id, service: 'web', address: '127.0.0.1', port: 8080 },
      }),
    ).finish(),
  );
const sample = (sequence: number): Buffer =>
  framed(
    AgentMessage.encode(AgentMessage.fromPartial({ sample: { sequence, cpuUsage: 0.5 } })).finish(),
  );
/** Field 1 (hello) claims 255 bytes that are not there: not an AgentMessage. */
const undecodable = framed(Buffer.from([0x0a, 0xff, 0x01]));
const watchRequest = framed(
  WatchPrioritizedEndpointsRequest.encode(
    WatchPrioritizedEndpointsRequest.fromPartial({ services: ['web'] }),
  ).finish(),
);

async function hardeningCount(event: string): Promise<number> {
  const text = await (await fetch(`${plane.httpUrl}/metrics`)).text();
  const m = new RegExp(`augur_grpc_hardening_total\\{event="${event}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('gRPC server hardening', () => {
  it('answers a Watch whose request has the compressed flag with UNIMPLEMENTED, and counts it', async () => {
    const before = await hardeningCount('compressed_refused');
    for (const end of [true, false]) {
      const r = await rawCall(session, WATCH, [framed(watchRequest.subarray(5), 1)], {
        end,
        deadlineMs: 10_000,
      });
      expect(r.hung).toBe(false);
      expect(r.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(r.message).toBe(COMPRESSED_REFUSED);
    }
    expect(await hardeningCount('compressed_refused')).toBe(before + 2);
  });

  it('ends every Report stream with a status when an undecodable message shares a chunk with good ones', async () => {
    const shapes: Array<(id: string) => Buffer[]> = [
      (id) => [Buffer.concat([hello(id), sample(1), undecodable])],
      (id) => [Buffer.concat([hello(id), undecodable])],
      (id) => [Buffer.concat([undecodable, hello(id)])],
    ];
    let n = 0;
    for (const shape of shapes) {
      for (const end of [true, false]) {
        for (let i = 0; i < 5; i++) {
          const r = await rawCall(session, REPORT, shape(`hard-${n++}`), {
            end,
            deadlineMs: 10_000,
          });
          expect(r.hung, `shape ${shapes.indexOf(shape)} end=${end}`).toBe(false);
          expect(r.code).toBe(grpc.status.INTERNAL);
        }
      }
    }
    // The good messages behind the bad one were not handed to the handler after the status.
    expect(await hardeningCount('late_message_dropped')).toBeGreaterThan(0);
  });

  it('leaves a well-formed Report stream alone', async () => {
    const r = await rawCall(session, REPORT, [Buffer.concat([hello('hard-ok'), sample(1)])], {
      end: false,
      settleOnData: true,
      deadlineMs: 10_000,
    });
    expect(r.hung).toBe(false);
    expect(r.code).toBeUndefined();
    expect(r.bodyBytes).toBeGreaterThan(0);
  });

  it('serves the same Watch sent uncompressed (after the streams above made service web) (answers with a list and stays open)', async () => {
    const r = await rawCall(session, WATCH, [watchRequest], {
      settleOnData: true,
      deadlineMs: 10_000,
    });
    expect(r.hung).toBe(false);
    expect(r.code).toBeUndefined();
    expect(r.bodyBytes).toBeGreaterThan(0);
  });
});
