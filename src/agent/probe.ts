import * as grpc from '@grpc/grpc-js';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import net from 'node:net';
import { ProbeHealth } from '../gen/augur/v1/common.js';
import { formatHostPort, parseHostPort } from '../common/address.js';
import { AugurError } from '../common/errors.js';
import { KeptAliveGetter } from './http-get.js';

export { ProbeHealth };

/** The outcome of one health probe. */
export interface ProbeResult {
  health: ProbeHealth;
  /** Seconds until the probe answered; the timeout when it failed. */
  responseTime: number;
  /** Why the probe failed, for logs. */
  error?: string;
}

/**
 * A health check of the endpoint, run once per tick. `check()` never rejects:
 * a failure (refused, error status, timeout) is a FAILING result whose response
 * time is the timeout, so a dead endpoint looks as slow as the slowest live one
 * can be. `close()` releases kept-alive connections.
 */
export interface Probe {
  readonly kind: 'http' | 'grpc' | 'tcp' | 'none';
  check(): Promise<ProbeResult>;
  close(): void;
}

export type ProbeSpec =
  | { kind: 'http'; url: string }
  | { kind: 'grpc'; address: string; service?: string }
  | { kind: 'tcp'; address: string }
  | { kind: 'none' };

export interface ProbeOptions {
  /** Seconds before a probe counts as failed. */
  timeoutSeconds: number;
}

const seconds = (startNs: bigint): number => Number(process.hrtime.bigint() - startNs) / 1e9;

function failed(timeoutSeconds: number, error: string): ProbeResult {
  return { health: ProbeHealth.PROBE_HEALTH_FAILING, responseTime: timeoutSeconds, error };
}

export function createProbe(spec: ProbeSpec, options: ProbeOptions): Probe {
  if (!(options.timeoutSeconds > 0)) {
    throw new AugurError(
      'BAD_PROBE',
      `health probe timeout must be > 0 seconds, got ${options.timeoutSeconds}`,
    );
  }
  switch (spec.kind) {
    case 'http':
      return new HttpProbe(spec.url, options.timeoutSeconds);
    case 'grpc':
      return new GrpcHealthProbe(spec.address, spec.service ?? '', options.timeoutSeconds);
    case 'tcp':
      return new TcpProbe(spec.address, options.timeoutSeconds);
    case 'none':
      return {
        kind: 'none',
        check: async () => ({ health: ProbeHealth.PROBE_HEALTH_UNSPECIFIED, responseTime: 0 }),
        close: () => {},
      };
  }
}

/**
 * HTTP(S) GET; 2xx and 3xx are serving. The connection is kept alive between
 * probes (`KeptAliveGetter`), so the time measured is the endpoint's answer, not
 * a TCP handshake; the body is read and dropped.
 */
export class HttpProbe implements Probe {
  readonly kind = 'http';
  private readonly getter: KeptAliveGetter;

  constructor(
    url: string,
    private readonly timeoutSeconds: number,
  ) {
    try {
      new URL(url);
    } catch {
      throw new AugurError(
        'BAD_PROBE',
        `health URL "${url}" is not a URL (for example http://127.0.0.1:8080/healthz)`,
      );
    }
    this.getter = new KeptAliveGetter(url, {
      what: 'health URL',
      timeoutMs: timeoutSeconds * 1000,
      discardBody: true,
      badUrlCode: 'BAD_PROBE',
    });
  }

  async check(): Promise<ProbeResult> {
    const start = process.hrtime.bigint();
    try {
      const { status } = await this.getter.get();
      return status >= 200 && status < 400
        ? { health: ProbeHealth.PROBE_HEALTH_SERVING, responseTime: seconds(start) }
        : failed(this.timeoutSeconds, `HTTP status ${status}`);
    } catch (err) {
      const e = err as AugurError;
      return failed(
        this.timeoutSeconds,
        e.code === 'HTTP_TIMEOUT'
          ? `no answer within ${this.timeoutSeconds} s`
          : ((e.cause as Error | undefined)?.message ?? e.message),
      );
    }
  }

  close(): void {
    this.getter.close();
  }
}

/** A TCP connect to the endpoint; serving when the handshake completes in time. */
export class TcpProbe implements Probe {
  readonly kind = 'tcp';
  private readonly host: string;
  private readonly port: number;

  constructor(
    address: string,
    private readonly timeoutSeconds: number,
  ) {
    const hp = parseHostPort(address, 'TCP health address');
    this.host = hp.host;
    this.port = hp.port;
  }

  check(): Promise<ProbeResult> {
    const start = process.hrtime.bigint();
    return new Promise<ProbeResult>((resolve) => {
      const socket = net.connect({ host: this.host, port: this.port });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(failed(this.timeoutSeconds, `no connection within ${this.timeoutSeconds} s`));
      }, this.timeoutSeconds * 1000);
      socket.once('connect', () => {
        clearTimeout(timer);
        const responseTime = seconds(start);
        socket.destroy();
        resolve({ health: ProbeHealth.PROBE_HEALTH_SERVING, responseTime });
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(failed(this.timeoutSeconds, err.message));
      });
    });
  }

  close(): void {}
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING */
const SERVING = 1;

/**
 * The two tiny grpc.health.v1 messages, coded by hand with the wire helpers
 * ts-proto already uses, so the agent does not load proto-loader and
 * protobufjs (several MB of heap) for one RPC.
 */
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

function encodeHealthCheckRequest(service: string): Buffer {
  const w = new BinaryWriter();
  if (service) w.uint32(10).string(service);
  return Buffer.from(w.finish());
}

function decodeHealthCheckStatus(bytes: Buffer): number {
  const r = new BinaryReader(bytes);
  let status = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 0) status = r.int32();
    else r.skip(tag & 7);
  }
  return status;
}

/**
 * grpc.health.v1.Health/Check on the endpoint's own address, over one channel
 * kept between probes. Only SERVING counts as serving.
 */
export class GrpcHealthProbe implements Probe {
  readonly kind = 'grpc';
  private readonly client: grpc.Client;

  constructor(
    address: string,
    private readonly service: string,
    private readonly timeoutSeconds: number,
  ) {
    const target = formatHostPort(parseHostPort(address, 'gRPC health address'));
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      // Notice a restarted endpoint quickly rather than after grpc-js's default 120 s backoff cap.
      'grpc.initial_reconnect_backoff_ms': Math.min(1000, timeoutSeconds * 1000),
      'grpc.max_reconnect_backoff_ms': Math.max(1000, timeoutSeconds * 1000),
    });
  }

  check(): Promise<ProbeResult> {
    const start = process.hrtime.bigint();
    const deadline = new Date(Date.now() + this.timeoutSeconds * 1000);
    return new Promise<ProbeResult>((resolve) => {
      this.client.makeUnaryRequest(
        HEALTH_CHECK_PATH,
        encodeHealthCheckRequest,
        decodeHealthCheckStatus,
        this.service,
        { deadline },
        (err, status) => {
          if (err) resolve(failed(this.timeoutSeconds, `${grpc.status[err.code]}: ${err.details}`));
          else if (status !== SERVING)
            resolve(failed(this.timeoutSeconds, `health status ${status}`));
          else resolve({ health: ProbeHealth.PROBE_HEALTH_SERVING, responseTime: seconds(start) });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
