import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { loadConfig } from '../../src/serve/config.js';
import { silentLogger } from '../../src/common/logger.js';
import { startStandaloneRrm, type StandaloneRrm } from '../../src/serve/rrm-standalone.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';
import { exchange, extProcClient, metadataEndpoints } from './support/envoy-like-client.js';

/*
 * `augur rrm --lps`: the RRM in its own "process" (its own gRPC and HTTP servers) keeping
 * its lists by WatchPrioritizedEndpoints from a real `augur serve`, which the test stops and
 * restarts to check the unreachable bounds, the /metrics gauges and the reconnection.
 */

let dataDir: string;
let healthPort: net.Server;
let healthAddress: string;
let plane: ControlPlane | undefined;
let lpsAddress: string;
let rrm: StandaloneRrm;
let client: ReturnType<typeof extProcClient>;
const agents: Agent[] = [];
const CPU: Record<string, number> = { 'api-a': 0.1, 'api-b': 0.6 };

async function startLps(grpcListen: string): Promise<ControlPlane> {
  const config = loadConfig({
    env: {},
    flags: {
      grpcListen,
      httpListen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      // Agents must miss many reports before going stale: the test machine can be very busy.
      lps: { scoreInterval: 0.2, staleAfterIntervals: 20 },
    },
  });
  return startControlPlane({ config, logger: silentLogger });
}

async function metric(name: string): Promise<string> {
  const text = await (await fetch(`${rrm.httpUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

const ask = (headers: Record<string, string> = {}) =>
  exchange(client, { clusterName: 'api', headers }).then(metadataEndpoints);

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'augur-rrm-standalone-'));
  healthPort = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => healthPort.listen(0, '127.0.0.1', r));
  healthAddress = `127.0.0.1:${(healthPort.address() as AddressInfo).port}`;
  plane = await startLps('127.0.0.1:0');
  lpsAddress = plane.grpcAddress;
  for (const [id, cpu] of Object.entries(CPU)) {
    agents.push(
      await Agent.start({
        lps: lpsAddress,
        endpointId: id,
        service: 'api',
        address: `127.0.0.1:${id === 'api-a' ? 9001 : 9002}`,
        intervalSeconds: 0.25,
        probe: { kind: 'tcp', address: healthAddress },
        sampler: { sample: async () => ({ cpuUsage: cpu, memoryUsage: 0.3, networkIo: 0 }) },
        hostFacts: {
          cpuCores: 2,
          memoryBytes: 1 << 30,
          networkBytesPerSecond: 1e8,
          linkSpeedSource: 'default',
        },
        backoff: { initialSeconds: 0.05, maxSeconds: 0.3 },
      }),
    );
  }
  const config = loadConfig({
    env: {},
    flags: {
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      logLevel: 'silent',
      rrm: {
        lpsUnreachableAfter: 0.4,
        lpsStandardOrderAfter: 2.5,
        lpsReconnectInitial: 0.05,
        lpsReconnectMax: 0.2,
        monitoringIntervalMinGap: 0,
        monitoringIntervalFromRequests: true,
        extProcListen: '127.0.0.1:0',
      },
    },
  });
  rrm = await startStandaloneRrm({ config, lps: lpsAddress, logger: silentLogger });
  client = extProcClient(rrm.grpcAddress);
}, 30_000);

afterAll(async () => {
  client?.close();
  await rrm?.stop();
  await Promise.all(agents.map((a) => a.stop()));
  await plane?.stop();
  await new Promise<void>((r) => healthPort.close(() => r()));
  await rm(dataDir, { recursive: true, force: true });
});

describe('augur rrm against a remote LPS', () => {
  it('routes from the watched lists, best score first', async () => {
    // Against the caller's order, so that only a scored list passes (an unscored one is served
    // in the caller's order).
    await expect
      .poll(() => ask({ 'x-augur-endpoints': 'api-b,api-a' }), { timeout: 10_000, interval: 100 })
      .toBe('127.0.0.1:9001,127.0.0.1:9002');
    expect(await metric('augur_rrm_lps_reachable')).toBe('augur_rrm_lps_reachable 1');
  });

  it('answers on its ext_proc fast path (rrm.extProcListen) from the same lists', async () => {
    const fast = extProcClient(rrm.extProcAddress!);
    try {
      const a = await exchange(fast, { clusterName: 'api' });
      // The weighted pick rotates between asks; both name the same endpoints.
      const sorted = (v: string | undefined) => v?.split(',').sort().join(',');
      expect(sorted(metadataEndpoints(a))).toBe(sorted(await ask()));
      expect(sorted(metadataEndpoints(a))).toBe('127.0.0.1:9001,127.0.0.1:9002');
    } finally {
      fast.close();
    }
  });

  it('forwards a monitoring interval to the LPS over gRPC', async () => {
    await ask({ 'x-augur-endpoints': 'api-b', 'x-augur-monitoring-interval': '0.5' });
    await expect.poll(() => plane!.lps.store.get('api-b')?.interval, { timeout: 5_000 }).toBe(0.5);
    expect(plane!.lps.store.get('api-a')?.interval).toBe(0.25);
  });

  it('serves the last lists, then the standard order, while the LPS is down; says so in /metrics', async () => {
    await plane!.stop();
    plane = undefined;
    // Past the first bound: unreachable, last lists (score order even against the caller's order).
    await expect
      .poll(() => metric('augur_rrm_lps_reachable'), { timeout: 5_000 })
      .toBe('augur_rrm_lps_reachable 0');
    expect(await metric('augur_rrm_serving_mode{mode="last-list"}')).toMatch(/ 1$/);
    expect(await ask({ 'x-augur-endpoints': 'api-b,api-a' })).toBe('127.0.0.1:9001,127.0.0.1:9002');
    // Past the second bound: the caller's order, and /healthz says why.
    await expect
      .poll(() => metric('augur_rrm_serving_mode{mode="standard-order"}'), { timeout: 5_000 })
      .toMatch(/ 1$/);
    expect(await ask({ 'x-augur-endpoints': 'api-b,api-a' })).toBe('127.0.0.1:9002,127.0.0.1:9001');
    const health = await fetch(`${rrm.httpUrl}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.text()).toMatch(/unreachable for more than 2.5 s/);
    expect(
      Number((await metric('augur_rrm_lps_unreachable_seconds')).split(' ')[1]),
    ).toBeGreaterThan(2);
  });

  it('reconnects when the LPS is back and routes live again', async () => {
    plane = await startLps(lpsAddress);
    await expect
      .poll(() => metric('augur_rrm_lps_reachable'), { timeout: 10_000 })
      .toBe('augur_rrm_lps_reachable 1');
    expect(await metric('augur_rrm_serving_mode{mode="live"}')).toMatch(/ 1$/);
    await expect
      .poll(() => ask({ 'x-augur-endpoints': 'api-b,api-a' }), { timeout: 10_000, interval: 100 })
      .toBe('127.0.0.1:9001,127.0.0.1:9002');
  });
});
