import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';

let plane: TestPlane;
beforeAll(async () => {
  plane = await startTestPlane();
});
afterAll(async () => plane.dispose());

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
}

describe('one gRPC address for every service', () => {
  it('lists augur, Envoy, health and reflection services through gRPC reflection', async () => {
    const reflectionDir = join(
      dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
      '..',
      'proto',
    );
    const def = protoLoader.loadSync('grpc/reflection/v1alpha/reflection.proto', {
      includeDirs: [reflectionDir],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1alpha: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.grpc.reflection.v1alpha.ServerReflection(
      plane.grpcAddress,
      grpc.credentials.createInsecure(),
    );
    const call = client.ServerReflectionInfo() as grpc.ClientDuplexStream<
      object,
      ReflectionResponse
    >;
    const response = await new Promise<ReflectionResponse>((resolve, reject) => {
      call.on('data', resolve);
      call.on('error', reject);
      call.write({ listServices: '' });
    });
    call.end();
    client.close();
    const names = response.listServicesResponse!.service.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'augur.v1.Telemetry',
        'augur.v1.LoadPrediction',
        'augur.v1.ResponseRouter',
        'envoy.service.discovery.v3.AggregatedDiscoveryService',
        'envoy.service.ext_proc.v3.ExternalProcessor',
      ]),
    );
  });
});
