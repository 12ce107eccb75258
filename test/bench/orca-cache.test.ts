/**
 * grpc-js 1.14.7 loads the ORCA proto for every load report; the benchmark's cache makes it load
 * once. Reports must be byte for byte what grpc-js writes without it, and read back the same.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { cacheGrpcOrcaProto } from '../../bench/e2e/orca-cache.js';

interface OrcaModule {
  PerRequestMetricRecorder: new () => {
    recordApplicationUtilizationMetric(v: number): void;
    recordCPUUtilizationMetric(v: number): void;
    recordQpsMetric(v: number): void;
    serialize(): Buffer;
  };
  createMetricsReader(
    listener: (report: Record<string, unknown>) => void,
  ): (code: number, details: string, metadata: unknown) => void;
}

const fromGrpc = createRequire(createRequire(import.meta.url).resolve('@grpc/grpc-js'));
const orca = fromGrpc('./orca') as OrcaModule;
const { Metadata } = fromGrpc('./metadata') as typeof import('@grpc/grpc-js');

function report(): Buffer {
  const r = new orca.PerRequestMetricRecorder();
  r.recordApplicationUtilizationMetric(0.625);
  r.recordCPUUtilizationMetric(0.625);
  r.recordQpsMetric(41.5);
  return r.serialize();
}

describe('cacheGrpcOrcaProto', () => {
  it('leaves the reports grpc-js writes and reads unchanged, and loads the proto once', () => {
    const before = report();
    cacheGrpcOrcaProto();
    expect(report().equals(before)).toBe(true);

    const protoLoader = fromGrpc('@grpc/proto-loader') as {
      loadSync: (f: string, o: object) => object;
    };
    const options = { keepCase: true };
    expect(protoLoader.loadSync('xds/service/orca/v3/orca.proto', options)).toBe(
      protoLoader.loadSync('xds/service/orca/v3/orca.proto', options),
    );

    const seen: Array<Record<string, unknown>> = [];
    const metadata = new Metadata();
    metadata.set('endpoint-load-metrics-bin', report());
    orca.createMetricsReader((r) => seen.push(r))(0, '', metadata);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.application_utilization).toBe(0.625);
    expect(seen[0]!.rps_fractional).toBe(41.5);
  });
});
