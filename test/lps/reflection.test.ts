import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { augurDescriptorIndex, ServerReflection } from '../../src/common/reflection.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { DEBIAN_PYTHON, requirePrerequisite } from '../support/prerequisites.js';
import { RawAgentStream } from '../support/raw-agent.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../python/reflection_client.py', import.meta.url));
const reflectionProtos = join(
  dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
  '..',
  'proto',
);

let plane: TestPlane;
let agent: RawAgentStream;
let out: string;
beforeAll(async () => {
  plane = await startTestPlane({ lps: { scoreInterval: 0.1 } });
  out = mkdtempSync(join(tmpdir(), 'augur-reflect-'));
  agent = new RawAgentStream(plane.grpcAddress);
  agent.hello({ endpointId: 'r-1', service: 'reflected', labels: { zone: 'a', tier: 'web' } });
  agent.sample({ sequence: 1 });
  await waitFor(() => plane.lps.store.get('r-1'), 10_000, 'the agent to register');
});
afterAll(async () => {
  agent?.close();
  await plane?.dispose();
  rmSync(out, { recursive: true, force: true });
});

const AUGUR_SERVICES = ['augur.v1.LoadPrediction', 'augur.v1.ResponseRouter', 'augur.v1.Telemetry'];
const ENVOY_SERVICES = [
  'envoy.service.discovery.v3.AggregatedDiscoveryService',
  'envoy.service.ext_proc.v3.ExternalProcessor',
];

interface Seen {
  services: string[];
  described: Record<string, { file: string; methods: Array<{ name: string; input: string }> }>;
  not_described: Record<string, { code: number; message: string }>;
  map_fields: Record<string, string[]>;
  list_endpoints: {
    endpoints: Array<{
      endpoint_id: string;
      service: string;
      labels: Record<string, string>;
      connected: boolean;
    }>;
  };
}

describe('gRPC reflection, used by a client that knows only the address', () => {
  it('lets Python build a descriptor pool, describe augur services and call ListEndpoints', async () => {
    requirePrerequisite('python3-grpc-tools');
    const { stdout } = await run(
      DEBIAN_PYTHON,
      [script, reflectionProtos, out, plane.grpcAddress, 'reflected'],
      { timeout: 60_000 },
    );
    const seen = JSON.parse(stdout.trim().split('\n').pop()!) as Seen;
    expect(seen.services).toEqual(expect.arrayContaining([...AUGUR_SERVICES, ...ENVOY_SERVICES]));
    // Each augur service is described from its own file, whose imports (google/protobuf/*,
    // augur/v1/common.proto) the pool accepted.
    expect(Object.keys(seen.described).sort()).toEqual(AUGUR_SERVICES);
    expect(seen.described['augur.v1.LoadPrediction']!.file).toBe('augur/v1/load_prediction.proto');
    expect(seen.described['augur.v1.LoadPrediction']!.methods.map((m) => m.name)).toContain(
      'ListEndpoints',
    );
    expect(seen.described['augur.v1.ResponseRouter']!.methods).toEqual([
      expect.objectContaining({ name: 'RouteResponse', input: 'augur.v1.RouteResponseRequest' }),
    ]);
    // Maps arrive as maps (the compiler's *Entry types), not as repeated messages.
    expect(seen.map_fields).toEqual({
      'augur.v1.EndpointInfo': ['labels'],
      'augur.v1.AgentHello': ['labels'],
      'augur.v1.HttpDelivery': ['headers'],
    });
    // Envoy's services are listed, and say why they are not described.
    for (const name of ENVOY_SERVICES) {
      expect(seen.not_described[name]!.code).toBe(5); // NOT_FOUND
      expect(seen.not_described[name]!.message).toMatch(/not shipped with augur/);
    }
    expect(seen.list_endpoints.endpoints).toEqual([
      expect.objectContaining({
        endpoint_id: 'r-1',
        service: 'reflected',
        labels: { zone: 'a', tier: 'web' },
        connected: true,
      }),
    ]);
  });
});

describe('the descriptor index', () => {
  const index = augurDescriptorIndex();
  const reflection = new ServerReflection({ index, services: () => AUGUR_SERVICES });
  const names = (files: Buffer[] | undefined) =>
    (files ?? []).map((b) => /^\n.(.+?\.proto)/s.exec(b.toString('latin1'))?.[1]);

  it('serves a file with every file it imports, itself first, each once', () => {
    expect(names(index.fileByName('augur/v1/load_prediction.proto'))).toEqual([
      'augur/v1/load_prediction.proto',
      'augur/v1/common.proto',
      'augur/v1/telemetry.proto',
      'google/protobuf/duration.proto',
      'google/protobuf/timestamp.proto',
      'google/protobuf/wrappers.proto',
    ]);
  });

  it('finds services, methods, nested messages and fields by their full names', () => {
    for (const symbol of [
      'augur.v1.Telemetry',
      'augur.v1.Telemetry.Report',
      '.augur.v1.EndpointInfo',
      'augur.v1.EndpointInfo.LabelsEntry',
      'augur.v1.EndpointInfo.labels',
      'google.protobuf.Duration',
    ])
      expect(index.fileContainingSymbol(symbol), symbol).toBeDefined();
    expect(index.fileContainingSymbol('augur.v1.Nothing')).toBeUndefined();
  });

  it('answers each kind of request, and names what it cannot find', () => {
    expect(reflection.answer({ messageRequest: 'listServices', listServices: '*' })).toMatchObject({
      listServicesResponse: { service: AUGUR_SERVICES.map((name) => ({ name })) },
    });
    expect(
      reflection.answer({
        messageRequest: 'allExtensionNumbersOfType',
        allExtensionNumbersOfType: 'augur.v1.EndpointInfo',
      }),
    ).toMatchObject({
      allExtensionNumbersResponse: { baseTypeName: 'augur.v1.EndpointInfo', extensionNumber: [] },
    });
    expect(
      reflection.answer({ messageRequest: 'fileByFilename', fileByFilename: 'nope.proto' })
        .errorResponse,
    ).toEqual({ errorCode: 5, errorMessage: expect.stringMatching(/no file nope\.proto/) });
  });
});
