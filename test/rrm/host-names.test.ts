import { afterEach, describe, expect, it } from 'vitest';
import { EndpointTables } from '../../src/rrm/endpoint-table.js';
import { EndpointLoads } from '../../src/rrm/endpoint-load.js';
import { Router } from '../../src/rrm/router.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * Agents may report a host name. Envoy's override-host matches the RRM's `ip:port` against its
 * EDS hosts, which augur's xDS publishes with the IP the LPS resolved (test/lps/host-names.test.ts):
 * the RRM answers with that same IP from the list and resolves nothing itself.
 */

let tables: EndpointTables | undefined;
afterEach(() => tables?.close());

describe('host names in the RRM', () => {
  it("answers with the list's ip:port for a host name; RouteResponse keeps the name", () => {
    const source = new StaticListSource();
    source.set('svc', [
      { endpointId: 'named', address: 'backend.internal', ip: '10.0.0.9', port: 8080, score: 0.9 },
      { endpointId: 'v6', address: 'backend6.internal', ip: '::1', port: 8080, score: 0.7 },
      { endpointId: 'literal', address: '10.0.0.2', port: 8080, score: 0.5 },
    ]);
    tables = new EndpointTables(source);
    const router = new Router(tables, {
      fallbacks: 2,
      maxEndpointStaleness: 10,
      dynamicPicker: 'highest-score',
      pickSampleSize: 16,
      loads: new EndpointLoads(),
    });
    expect(router.decide('svc', true, undefined).value).toBe(
      '10.0.0.9:8080,[::1]:8080,10.0.0.2:8080',
    );
    const entry = tables.get('svc')!.byId.get('named')!;
    expect(entry.hostPort).toBe('backend.internal:8080');
  });

  it('follows the IP of a name when a new list carries another one', () => {
    const source = new StaticListSource();
    source.set('svc', [{ endpointId: 'named', address: 'backend.internal', ip: '10.0.0.9' }]);
    tables = new EndpointTables(source);
    source.set('svc', [{ endpointId: 'named', address: 'backend.internal', ip: '10.0.0.10' }]);
    expect(tables.get('svc')!.byId.get('named')!.destination).toBe('10.0.0.10:1');
  });

  it('leaves a name the LPS could not resolve as it is (Envoy will not match it and moves on)', () => {
    const source = new StaticListSource();
    source.set('svc', [{ endpointId: 'named', address: 'backend.internal', ip: '', port: 8080 }]);
    tables = new EndpointTables(source);
    expect(tables.get('svc')!.byId.get('named')!.destination).toBe('backend.internal:8080');
  });
});
