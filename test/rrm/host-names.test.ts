import { lookup } from 'node:dns/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logger.js';
import { EndpointTables } from '../../src/rrm/endpoint-table.js';
import { EndpointLoads } from '../../src/rrm/endpoint-load.js';
import { Router } from '../../src/rrm/router.js';
import { HostResolver, sharedHostResolver } from '../../src/xds/host-resolver.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * Agents may report a host name. Envoy's override-host matches the RRM's `ip:port` against
 * its EDS hosts, which augur's xDS resolves to IPs: the RRM must resolve the same way.
 */

let tables: EndpointTables | undefined;
afterEach(() => tables?.close());

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('host names in the RRM', () => {
  it('answers with the resolved ip:port once the name is resolved; RouteResponse keeps the name', async () => {
    const source = new StaticListSource();
    source.set('svc', [
      { endpointId: 'named', address: 'localhost', port: 8080, score: 0.9 },
      { endpointId: 'literal', address: '10.0.0.2', port: 8080, score: 0.5 },
    ]);
    const resolver = new HostResolver({ enabled: true, logger: silentLogger });
    tables = new EndpointTables(source, resolver);
    const router = new Router(tables, {
      fallbacks: 1,
      maxEndpointStaleness: 10,
      dynamicPicker: 'highest-score',
      pickSampleSize: 16,
      loads: new EndpointLoads(),
    });
    const { address: ip } = await lookup('localhost');
    const expected = `${ip.includes(':') ? `[${ip}]` : ip}:8080`;
    await until(() => router.decide('svc', true, undefined).value.startsWith(expected));
    expect(router.decide('svc', true, undefined).value).toBe(`${expected},10.0.0.2:8080`);
    const entry = tables.get('svc')!.byId.get('named')!;
    expect(entry.destination).toBe(expected);
    expect(entry.hostPort).toBe('localhost:8080');
  });

  it('leaves names as they are with resolution off (Envoy will not match them)', () => {
    const source = new StaticListSource();
    source.set('svc', [{ endpointId: 'named', address: 'localhost', port: 8080 }]);
    tables = new EndpointTables(source, new HostResolver({ enabled: false, logger: silentLogger }));
    expect(tables.get('svc')!.byId.get('named')!.destination).toBe('localhost:8080');
  });

  it('gives xDS and the RRM of one augur serve the same resolver', () => {
    const ctx = { config: { xds: { resolveHostnames: true } }, logger: silentLogger };
    expect(sharedHostResolver(ctx)).toBe(sharedHostResolver(ctx));
    expect(sharedHostResolver({ ...ctx })).not.toBe(sharedHostResolver(ctx));
  });
});
