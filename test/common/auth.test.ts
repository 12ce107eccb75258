import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { PROCESS_PATH } from '../../src/rrm/ext-proc/http2-listener.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadPredictionClient } from '../../src/gen/augur/v1/load_prediction.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';

/*
 * Bearer tokens, roles, and what an agent identity may say: the attacks of issue 12 (a fake
 * endpoint, an id takeover, sequence poisoning, an interval pin through the API) replayed as an
 * attacker would, on a real control plane.
 */

const token = () => randomBytes(24).toString('base64url');
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const T = {
  agentA: token(),
  agentAny: token(),
  reader: token(),
  envoy: token(),
  admin: token(),
};
const principals = [
  {
    name: 'agent-a',
    roles: ['agent'],
    endpoints: 'a-*',
    services: 'web',
    tokenSha256: [sha(T.agentA)],
  },
  { name: 'agent-any', roles: ['agent'], tokenSha256: [sha(T.agentAny)] },
  { name: 'reader', roles: ['reader'], tokenSha256: [sha(T.reader)] },
  { name: 'envoy', roles: ['dataPlane'], tokenSha256: [sha(T.envoy)] },
  { name: 'admin', roles: ['admin'], tokenSha256: [sha(T.admin)] },
];

const bearer = (t: string | undefined): grpc.Metadata => {
  const m = new grpc.Metadata();
  if (t !== undefined) m.set('authorization', `Bearer ${t}`);
  return m;
};

let plane: TestPlane;
let api: LoadPredictionClient;
const flags = { security: { principals }, rrm: { extProcListen: '127.0.0.1:0' } };
beforeAll(async () => {
  plane = await startTestPlane(flags);
  api = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
});
afterAll(async () => {
  api.close();
  await plane.dispose();
});

function agent(t: string | undefined): RawAgentStream {
  return new RawAgentStream(plane.grpcAddress, grpc.credentials.createInsecure(), bearer(t));
}

/** Says hello; the stream's end status, or 'open' once the LPS sent its config. */
async function helloOutcome(
  t: string | undefined,
  endpointId: string,
  service = 'web',
  address = '127.0.0.1',
): Promise<grpc.status | 'open'> {
  const s = agent(t);
  try {
    s.hello({ endpointId, service, address });
    await waitFor(() => s.status || s.received.some((m) => m.config), 10_000, 'an answer');
    return s.status ? s.status.code : 'open';
  } finally {
    s.close();
  }
}

function unary<Req, Res>(
  method: (
    req: Req,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res: Res) => void,
  ) => unknown,
  req: Req,
  t: string | undefined,
): Promise<grpc.status> {
  return new Promise((resolve) =>
    method.call(api, req, bearer(t), (err) => resolve(err ? err.code : grpc.status.OK)),
  );
}

describe('bearer tokens and roles', () => {
  it('refuses a caller with no token or an unknown one: UNAUTHENTICATED', async () => {
    expect(await helloOutcome(undefined, 'a-1')).toBe(grpc.status.UNAUTHENTICATED);
    expect(await helloOutcome(token(), 'a-1')).toBe(grpc.status.UNAUTHENTICATED);
    expect(await unary(api.listEndpoints, { service: '' }, undefined)).toBe(
      grpc.status.UNAUTHENTICATED,
    );
  });

  it('lets a reader read, an agent report, and neither call the other’s methods', async () => {
    expect(await unary(api.listEndpoints, { service: '' }, T.reader)).toBe(grpc.status.OK);
    expect(await unary(api.listEndpoints, { service: '' }, T.agentA)).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(await helloOutcome(T.reader, 'a-1')).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('lets only an admin set the monitoring interval (the interval pin through the API)', async () => {
    expect(await helloOutcome(T.agentA, 'a-pin')).toBe('open');
    const req = { service: 'web', endpointIds: [], monitoringInterval: { seconds: 300, nanos: 0 } };
    expect(await unary(api.setMonitoringInterval, req, T.reader)).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(await unary(api.setMonitoringInterval, req, T.agentA)).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(plane.lps.store.get('a-pin')?.intervalPinned).toBe(false);
    expect(await unary(api.setMonitoringInterval, req, T.admin)).toBe(grpc.status.OK);
    expect(plane.lps.store.get('a-pin')?.intervalPinned).toBe(true);
  });
});

describe('what an agent identity may say', () => {
  it('refuses a fake endpoint: an id or a service its identity does not allow', async () => {
    expect(await helloOutcome(T.agentA, 'b-1')).toBe(grpc.status.PERMISSION_DENIED);
    expect(await helloOutcome(T.agentA, 'a-2', 'pay')).toBe(grpc.status.PERMISSION_DENIED);
    expect(plane.lps.store.get('b-1')).toBeUndefined();
    expect(plane.lps.store.get('a-2')).toBeUndefined();
    const metrics = await plane.registry.metrics();
    expect(metrics).toMatch(
      /augur_auth_refused_total\{surface="telemetry",reason="endpoint"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /augur_auth_refused_total\{surface="telemetry",reason="service"\} [1-9]/,
    );
  });

  it('refuses an id takeover by another identity once the owner’s stream dropped', async () => {
    expect(await helloOutcome(T.agentA, 'a-own', 'web', '10.0.0.1')).toBe('open');
    await waitFor(() => plane.lps.store.get('a-own')?.connected === false, 10_000, 'disconnect');
    // Another agent identity whose pattern allows any id: still not this one.
    expect(await helloOutcome(T.agentAny, 'a-own', 'web', '10.6.6.6')).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(plane.lps.store.get('a-own')?.address).toBe('10.0.0.1');
    expect(plane.lps.store.ownerOf('a-own')).toBe('agent-a');
    // The owner comes back.
    expect(await helloOutcome(T.agentA, 'a-own', 'web', '10.0.0.1')).toBe('open');
  });

  it('keeps the id with its owner across a restart', async () => {
    expect(await helloOutcome(T.agentA, 'a-kept', 'web', '10.0.0.2')).toBe('open');
    await waitFor(() => plane.lps.store.get('a-kept')?.connected === false, 10_000, 'disconnect');
    const dataDir = plane.dataDir;
    api.close();
    await plane.stop();
    plane = await startTestPlane(flags, dataDir);
    api = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    // The record came back from the data dir with its holder.
    expect(plane.lps.store.ownerOf('a-kept')).toBe('agent-a');
    expect(await helloOutcome(T.agentAny, 'a-kept', 'web', '10.6.6.6')).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(plane.lps.store.get('a-kept')?.address).toBe('10.0.0.2');
    expect(await helloOutcome(T.agentA, 'a-kept', 'web', '10.0.0.2')).toBe('open');
  });

  it('keeps a poisoned sequence (2^53 − 1) from locking the owner out, across a restart', async () => {
    const s = agent(T.agentA);
    try {
      s.hello({ endpointId: 'a-seq', service: 'web' });
      s.sample({ sequence: 1 });
      await s.waitMessage((m) => m.ack?.lastSequence === 1, 10_000);
      s.sample({ sequence: 2 ** 53 - 1 });
      const refused = await s.waitMessage((m) => m.error?.field === 'sequence', 10_000);
      expect(refused.error?.code).toBe('OUT_OF_RANGE');
      s.sample({ sequence: 2 });
      await s.waitMessage((m) => m.ack?.lastSequence === 2, 10_000);
      expect(s.status).toBeUndefined();
    } finally {
      s.close();
    }
    expect(plane.lps.store.get('a-seq')?.lastSequence).toBe(2);
    // Restart on the same data dir: the owner continues where it was.
    const dataDir = plane.dataDir;
    api.close();
    await plane.stop();
    plane = await startTestPlane(flags, dataDir);
    api = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    const again = agent(T.agentA);
    try {
      again.hello({ endpointId: 'a-seq', service: 'web' });
      await waitFor(() => again.status || again.received.length > 0, 10_000, 'an answer');
      expect(again.status).toBeUndefined();
      await again.waitMessage((m) => m.ack?.lastSequence === 2, 10_000);
      again.sample({ sequence: 3 });
      await again.waitMessage((m) => m.ack?.lastSequence === 3, 10_000);
    } finally {
      again.close();
    }
  });
});

describe('the ext_proc fast path', () => {
  /** An empty Process stream, half-closed at once: its grpc-status. */
  const processStatus = (t: string | undefined): Promise<string> =>
    new Promise((resolve, reject) => {
      const session = http2.connect(`http://${plane.extProcAddress!}`);
      session.on('error', reject);
      const stream = session.request(
        {
          ':method': 'POST',
          ':path': PROCESS_PATH,
          'content-type': 'application/grpc',
          te: 'trailers',
          ...(t !== undefined && { authorization: `Bearer ${t}` }),
        },
        { endStream: true },
      );
      let code = '';
      stream.on('response', (h) => (code ||= String(h['grpc-status'] ?? '')));
      stream.on('trailers', (h) => (code ||= String(h['grpc-status'] ?? '')));
      stream.on('data', () => undefined);
      stream.on('error', reject);
      stream.on('close', () => {
        session.close();
        resolve(code);
      });
    });

  it('takes streams only from a dataPlane identity', async () => {
    expect(await processStatus(undefined)).toBe(String(grpc.status.UNAUTHENTICATED));
    expect(await processStatus(T.reader)).toBe(String(grpc.status.PERMISSION_DENIED));
    expect(await processStatus(T.envoy)).toBe(String(grpc.status.OK));
    expect(await plane.registry.metrics()).toMatch(
      /augur_auth_refused_total\{surface="ext_proc",reason="role"\} 1/,
    );
  });
});
