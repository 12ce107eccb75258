import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LoadPredictionClient,
  type SetMonitoringIntervalResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { exchange, extProcClient } from '../rrm/support/envoy-like-client.js';

/**
 * Issue 12's interval pin: one SetMonitoringInterval, or one data-plane request carrying
 * `x-augur-monitoring-interval: 5m`, set 300 s for everyone. Now the interval stays within
 * lps.minInterval..maxInterval, and requests may change it only where rrm config allows.
 */

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
});

async function reportingAgent(id: string): Promise<RawAgentStream> {
  const s = new RawAgentStream(plane!.grpcAddress);
  closers.push(() => s.close());
  s.hello({ endpointId: id });
  s.sample({ sequence: 1 });
  await s.waitMessage((m) => m.ack?.lastSequence === 1);
  return s;
}

async function forwards(outcome: string): Promise<number> {
  const metric = plane!.registry.getSingleMetric('augur_rrm_monitoring_interval_requests_total');
  const { values } = await metric!.get();
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

/** An ext_proc exchange for service `svc` (the cluster is named after it), as Envoy sends it. */
async function request(headers: Record<string, string>) {
  const client = extProcClient(plane!.grpcAddress);
  closers.push(() => client.close());
  await waitFor(() => plane!.lps.lists.get('svc')?.endpoints.length, 5000, 'the list of svc');
  return exchange(client, { clusterName: 'svc', headers });
}

describe('the monitoring interval cannot be pinned by a client', () => {
  it('SetMonitoringInterval refuses an interval outside lps.minInterval..maxInterval', async () => {
    plane = await startTestPlane({ lps: { minInterval: 0.5, maxInterval: 10 } });
    await reportingAgent('web-1');
    const c = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    closers.push(() => c.close());
    const set = (seconds: number) =>
      new Promise<SetMonitoringIntervalResponse>((resolve, reject) =>
        c.setMonitoringInterval(
          { service: 'svc', endpointIds: [], monitoringInterval: { seconds, nanos: 0 } },
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      );
    await expect(set(300)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('between 0.5 s and 10 s, got 300 s'),
    });
    expect(plane.lps.store.get('web-1')!.interval).toBe(1);
    await expect(set(5)).resolves.toMatchObject({ endpointIds: ['web-1'] });
    expect(plane.lps.store.get('web-1')!.interval).toBe(5);
  });

  it('ignores x-augur-monitoring-interval by default, routing the request and counting the ask', async () => {
    plane = await startTestPlane();
    await reportingAgent('web-1');
    const answer = await request({ 'x-augur-monitoring-interval': '5m' });
    expect(answer.response).toBe('request_headers');
    // Not parsed either: a value augur does not act on fails no request.
    expect((await request({ 'x-augur-monitoring-interval': 'soon' })).response).toBe(
      'request_headers',
    );
    expect(await forwards('disabled')).toBe(2);
    expect(await forwards('forwarded')).toBe(0);
    expect(plane.lps.store.get('web-1')!.interval).toBe(1);
    expect(plane.lps.store.get('web-1')!.intervalPinned).toBe(false);
  });

  it('with rrm.monitoringIntervalFromRequests, takes the header within the configured bounds only', async () => {
    plane = await startTestPlane({
      lps: { maxInterval: 10 },
      rrm: { monitoringIntervalFromRequests: true, monitoringIntervalMinGap: 0 },
    });
    await reportingAgent('web-1');
    const tooLong = await request({ 'x-augur-monitoring-interval': '5m' });
    expect(tooLong.response).toBe('immediate_response');
    expect(tooLong.immediate_response!.body.toString()).toContain(
      '300 s is outside the allowed range 0.1 s to 10 s',
    );
    expect(plane.lps.store.get('web-1')!.interval).toBe(1);
    expect((await request({ 'x-augur-monitoring-interval': '2' })).response).toBe(
      'request_headers',
    );
    await waitFor(() => plane!.lps.store.get('web-1')!.interval === 2, 5000, 'interval 2 s');
    expect(await forwards('forwarded')).toBe(1);
  });
});
