/**
 * Part of `npm run bench:xds`: what the xDS server's protobuf code costs, in this process, in one
 * run. src/xds reads and writes Envoy's messages with @bufbuild/protobuf (descriptors generated
 * from the protos @grpc/grpc-js-xds ships) and writes the ClusterLoadAssignment by hand; this
 * measures both against the generic paths, and protobufjs (which the RRM still uses for ext_proc)
 * for reference. Each figure is the median of 5 repetitions, with their range.
 */
import { create, fromBinary, fromJson, toBinary, type JsonObject } from '@bufbuild/protobuf';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { buildXdsRegistry, envoyRegistry, messageType } from '../src/xds/envoy-registry.js';
import { ResourceBuilder, weightOf, type PublishedEndpoint } from '../src/xds/resources.js';
import { markdownTable, quantile } from './report.js';

const REPEATS = 5;

/** Median and range of µs per call over REPEATS repetitions of `n` calls. */
function time(n: number, fn: () => void): { median: number; min: number; max: number } {
  for (let i = 0; i < Math.min(n, 1000); i++) fn(); // warm up
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    runs.push(((performance.now() - t0) * 1000) / n);
  }
  return { median: quantile(runs, 0.5), min: Math.min(...runs), max: Math.max(...runs) };
}

const fmt = (t: { median: number; min: number; max: number }, unit: 'µs' | 'ms'): string => {
  const k = unit === 'ms' ? 1000 : 1;
  const d = t.median / k >= 100 ? 0 : t.median / k >= 10 ? 1 : 2;
  return `${(t.median / k).toFixed(d)} ${unit} (${(t.min / k).toFixed(d)}-${(t.max / k).toFixed(d)})`;
};

function endpoints(n: number): PublishedEndpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `ep-${i}`,
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 8080,
    share: (0.2 + ((i * 7919) % 1000) / 1000) / n,
    region: 'r1',
    zone: `z${i % 3}`,
    subZone: '',
  }));
}

/** The same ClusterLoadAssignment the hand writer produces, as proto3 JSON. */
function assignmentJson(service: string, eps: readonly PublishedEndpoint[]): JsonObject {
  return {
    cluster_name: service,
    endpoints: eps.map((e) => ({
      locality: { region: e.region, zone: e.zone, sub_zone: e.id },
      lb_endpoints: [
        {
          endpoint: { address: { socket_address: { address: e.ip, port_value: e.port } } },
          health_status: 'HEALTHY',
          load_balancing_weight: weightOf(e.share, 10_000),
        },
      ],
      load_balancing_weight: weightOf(e.share, 10_000),
    })),
  };
}

/** The table of the codec figures, in markdown, with the text that reads it. */
export function measureCodecs(): string {
  const t0 = performance.now();
  const protos = buildXdsRegistry();
  const serverRegistryMs = performance.now() - t0;
  const t1 = performance.now();
  envoyRegistry();
  const fullRegistryMs = performance.now() - t1;
  const t2 = performance.now();
  const { root } = loadEnvoyProtos();
  const protobufjsMs = performance.now() - t2;

  // An ACK, as every client sends after every push.
  const request = messageType(protos, 'envoy.service.discovery.v3.DiscoveryRequest');
  const ack = toBinary(
    request,
    fromJson(request, {
      version_info: 'd41d8cd98f00b204',
      type_url: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
      resource_names: ['bench'],
      response_nonce: '12345',
    }),
  );
  const pbjsRequest = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
  const rows: Array<Array<string | number>> = [
    [
      'DiscoveryRequest (an ACK) decode',
      fmt(
        time(100_000, () => fromBinary(request, ack)),
        'µs',
      ),
      fmt(
        time(100_000, () => pbjsRequest.toObject(pbjsRequest.decode(ack), { defaults: true })),
        'µs',
      ),
    ],
  ];

  const options = {
    weightScale: 10_000,
    connectTimeout: 1,
    envoyLbPolicy: 'override_host',
    envoyUpstreamHttp2: false,
  } as const;
  const cla = messageType(protos, 'envoy.config.endpoint.v3.ClusterLoadAssignment');
  const pbjsCla = root.lookupType('envoy.config.endpoint.v3.ClusterLoadAssignment');
  for (const n of [1_000, 10_000]) {
    const eps = endpoints(n);
    const reps = n === 1_000 ? 50 : 5;
    const warm = new ResourceBuilder(protos, options);
    warm.endpoints('bench', eps);
    let flip = false;
    const reweighted = eps.map((e, i) => ({ ...e, share: eps[(i + 1) % n]!.share }));
    const hand = time(reps, () => {
      flip = !flip;
      warm.endpoints('bench', flip ? reweighted : eps);
    });
    const handCold = time(reps, () => new ResourceBuilder(protos, options).endpoints('bench', eps));
    const json = assignmentJson('bench', eps);
    const message = fromJson(cla, json);
    const generic = time(reps, () => toBinary(cla, create(cla, message)));
    const pbjsObject = pbjsCla.fromObject(
      pbjsCla.toObject(pbjsCla.decode(toBinary(cla, message)), { defaults: false }),
    );
    const pbjs = time(reps, () => pbjsCla.encode(pbjsObject).finish());
    rows.push(
      [
        `ClusterLoadAssignment, ${n.toLocaleString('en')} endpoints, weights changed (the push)`,
        `${fmt(hand, 'ms')} hand-written; ${fmt(generic, 'ms')} toBinary of the message`,
        fmt(pbjs, 'ms'),
      ],
      [
        `ClusterLoadAssignment, ${n.toLocaleString('en')} endpoints, new builder (every endpoint's bytes built)`,
        `${fmt(handCold, 'ms')} hand-written`,
        '',
      ],
    );
  }
  return [
    markdownTable(['operation', '@bufbuild/protobuf (src/xds)', 'protobufjs'], rows),
    '',
    `Loading the protos (once per process; the descriptor set itself is decoded on first use): the server's part of Envoy's API as @bufbuild/protobuf descriptors ` +
      `${serverRegistryMs.toFixed(0)} ms, all of Envoy's v3 API (the config checker) ${fullRegistryMs.toFixed(0)} ms, ` +
      `protobufjs parsing the .proto files (what the RRM and reflection still load) ${protobufjsMs.toFixed(0)} ms. ` +
      `"toBinary of the message" encodes an already built message (building it from the list costs more on top); ` +
      `"weights changed" is the hand writer with every endpoint's fixed bytes cached, as on every push.`,
  ].join('\n');
}
