import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import * as requestApi from '../../src/rrm/request-api.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { exchange, extProcClient } from './support/envoy-like-client.js';

/*
 * Issue 12's interval pin through Envoy: the bootstraps did not strip client-sent x-augur-*
 * request headers, so one request carrying `x-augur-monitoring-interval` reached the RRM. Each
 * bootstrap in envoy/ now removes every request header the RRM reads before the ext_proc filter.
 *
 * No Envoy runs here (DESIGN.md), so the bootstrap's HTTP filters before ext_proc are applied to
 * a client's headers as Envoy applies them (the header_mutation filter: `remove` takes exact
 * names, case-insensitive as Envoy's header map; `append` with its append_action; a route's
 * typed_per_filter_config for a filter); the headers that come out go to augur's real RRM.
 */

const ENVOY_DIR = join(import.meta.dirname, '../../envoy');
const BOOTSTRAPS = ['bootstrap.yaml', 'bootstrap-static-cluster.yaml', 'bootstrap-mtls.yaml'];
const HEADER_MUTATION = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
const EXT_PROC = 'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';

type Tree = Record<string, unknown>;
type Headers = Array<[string, string]>;

interface Mutation {
  remove?: string;
  append?: { header: { key: string; value: string }; append_action?: string };
}

function load(file: string): Tree {
  return parse(readFileSync(join(ENVOY_DIR, file), 'utf8')) as Tree;
}

function hcm(doc: Tree): Tree {
  const listeners = (doc.static_resources as Tree).listeners as Tree[];
  const chains = listeners[0]!.filter_chains as Tree[];
  return (chains[0]!.filters as Tree[])[0]!.typed_config as Tree;
}

function typeOf(filter: Tree): string {
  const url = String((filter.typed_config as Tree)['@type']);
  return url.slice(url.lastIndexOf('/') + 1);
}

function route(doc: Tree): Tree {
  const vhosts = (hcm(doc).route_config as Tree).virtual_hosts as Tree[];
  return (vhosts[0]!.routes as Tree[])[0]!;
}

function mutate(headers: Headers, mutations: Mutation[] | undefined): Headers {
  let out = headers;
  for (const m of mutations ?? []) {
    if (m.remove !== undefined) {
      const name = m.remove.toLowerCase();
      out = out.filter(([k]) => k !== name);
    } else if (m.append) {
      const key = m.append.header.key.toLowerCase();
      const action = m.append.append_action ?? 'APPEND_IF_EXISTS_OR_ADD';
      const has = out.some(([k]) => k === key);
      if (action === 'ADD_IF_ABSENT' && has) continue;
      if (action === 'OVERWRITE_IF_EXISTS' && !has) continue;
      if (action.startsWith('OVERWRITE')) out = out.filter(([k]) => k !== key);
      out = [...out, [key, m.append.header.value]];
    }
  }
  return out;
}

/** The request headers the ext_proc filter of `doc` sees when a client sends `client`. */
function headersAtExtProc(doc: Tree, client: Headers): Headers {
  // Envoy's header map keys are lowercase, whatever the client wrote.
  let headers: Headers = client.map(([k, v]) => [k.toLowerCase(), v]);
  const perRoute = (route(doc).typed_per_filter_config ?? {}) as Record<string, Tree>;
  for (const filter of hcm(doc).http_filters as Tree[]) {
    const type = typeOf(filter);
    if (type === EXT_PROC) return headers;
    if (type !== HEADER_MUTATION)
      throw new Error(`a filter this test cannot apply before ext_proc: ${type}`);
    const config = filter.typed_config as { mutations?: { request_mutations?: Mutation[] } };
    headers = mutate(headers, config.mutations?.request_mutations);
    const routeConfig = perRoute[String(filter.name)] as
      { mutations?: { request_mutations?: Mutation[] } } | undefined;
    headers = mutate(headers, routeConfig?.mutations?.request_mutations);
  }
  throw new Error('no ext_proc filter');
}

/** Every request header the RRM reads (the request API's x-augur-* and the EPP header). */
const READ_BY_AUGUR = Object.values(requestApi as Record<string, unknown>).filter(
  (v): v is string => typeof v === 'string' && /^x-(augur|gateway)-/.test(v),
);

const HOSTILE: Headers = [
  ['X-Augur-Monitoring-Interval', '5m'],
  ['x-augur-monitoring-interval', '2'],
  ['x-augur-endpoints', 'attacker-1'],
  ['X-AUGUR-DYNAMIC-ROUTING', 'false'],
  ['x-gateway-destination-endpoint', '10.9.9.9:80'],
  ['x-request-id', 'abc'],
];

describe('envoy/ bootstraps strip client-sent augur headers at the edge', () => {
  it('knows which headers augur reads', () => {
    expect(READ_BY_AUGUR.sort()).toEqual([
      'x-augur-dynamic-routing',
      'x-augur-endpoints',
      'x-augur-monitoring-interval',
      'x-gateway-destination-endpoint',
    ]);
  });

  it.each(BOOTSTRAPS)(
    '%s: none of them reaches ext_proc, the rest does, and a strip filter precedes it',
    (file) => {
      const doc = load(file);
      const names = (hcm(doc).http_filters as Tree[]).map((f) => String(f.name));
      expect(names.indexOf('augur.strip_client_headers')).toBeGreaterThanOrEqual(0);
      expect(names.indexOf('augur.strip_client_headers')).toBeLessThan(
        names.indexOf('envoy.filters.http.ext_proc'),
      );
      const seen = headersAtExtProc(doc, HOSTILE);
      for (const name of READ_BY_AUGUR)
        expect([name, seen.some(([k]) => k === name)]).toEqual([name, false]);
      expect(seen).toEqual([['x-request-id', 'abc']]);
    },
  );

  it.each(BOOTSTRAPS)("%s: keeps what the operator's route sets for the RRM", (file) => {
    const doc = load(file);
    route(doc).typed_per_filter_config = {
      'augur.route_headers': {
        '@type': `type.googleapis.com/${HEADER_MUTATION}PerRoute`,
        mutations: {
          request_mutations: [
            {
              append: {
                header: { key: 'x-augur-dynamic-routing', value: 'false' },
                append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
              },
            },
          ],
        },
      },
    };
    const seen = headersAtExtProc(doc, HOSTILE);
    expect(seen.filter(([k]) => k.startsWith('x-augur-'))).toEqual([
      ['x-augur-dynamic-routing', 'false'],
    ]);
  });
});

describe('a client behind the shipped bootstrap cannot change the monitoring interval', () => {
  let plane: TestPlane | undefined;
  const closers: Array<() => void> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await plane?.dispose();
    plane = undefined;
  });

  it('even where rrm.monitoringIntervalFromRequests lets requests ask', async () => {
    plane = await startTestPlane({
      rrm: { monitoringIntervalFromRequests: true, monitoringIntervalMinGap: 0 },
    });
    const agent = new RawAgentStream(plane.grpcAddress);
    closers.push(() => agent.close());
    agent.hello({ endpointId: 'web-1' });
    agent.sample({ sequence: 1 });
    await agent.waitMessage((m) => m.ack?.lastSequence === 1);
    const client = extProcClient(plane.grpcAddress);
    closers.push(() => client.close());
    await waitFor(() => plane!.lps.lists.get('svc')?.endpoints.length, 5000, 'the list of svc');
    const forwarded = async () => {
      const metric = plane!.registry.getSingleMetric(
        'augur_rrm_monitoring_interval_requests_total',
      );
      const { values } = await metric!.get();
      return values
        .filter((v) => v.labels.outcome === 'forwarded')
        .reduce((s, v) => s + v.value, 0);
    };
    const send = (headers: Headers) =>
      exchange(client, {
        clusterName: 'svc',
        headers: Object.fromEntries(headers.map(([k, v]) => [k, v])),
      });

    const client2s: Headers = [['x-augur-monitoring-interval', '2']];
    for (const file of BOOTSTRAPS) {
      const answer = await send(headersAtExtProc(load(file), client2s));
      expect(answer.response).toBe('request_headers');
    }
    expect(await forwarded()).toBe(0);
    expect(plane.lps.store.get('web-1')!.interval).toBe(1);

    // Without the strip, the same request reaches the RRM and changes the interval: the check
    // above could fail.
    expect((await send(client2s)).response).toBe('request_headers');
    await waitFor(() => plane!.lps.store.get('web-1')!.interval === 2, 5000, 'interval 2 s');
    expect(await forwarded()).toBe(1);
  });
});
