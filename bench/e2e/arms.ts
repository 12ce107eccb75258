/**
 * The arms: how each way of balancing sends one request. Every client is opened fresh for its
 * arm run, with connections of its own (no subchannel shared with another arm's channel), and
 * closed after it.
 *
 * - round-robin, wrr-orca: grpc-js channels over the backends' addresses with the
 *   `round_robin` or `weighted_round_robin` policy (gRFC A58 defaults: weights from per-call ORCA
 *   reports, updated every second, used after a 10 s blackout).
 * - augur-xds, perfect-reactive, oracle: @grpc/grpc-js-xds channels on `xds:///<service>`, the
 *   first against `augur serve`'s ADS, the bounds against the bounds' ADS (bounds.ts), with
 *   augur's `augur_expected_delay` policy registered (src/grpc-lb), which both publish. Each
 *   channel gets its bootstrap in its channel options (grpc-js-xds's per-channel bootstrap,
 *   `grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config`): one process talks to two ADS
 *   servers, and each arm run starts with an xDS client of its own instead of sharing the
 *   process-wide one that GRPC_XDS_BOOTSTRAP would give.
 * - augur-xds-locality: the same channels on `augur serve`'s ADS in the data-plane process, which
 *   does not register augur's policy, so they use the `wrr_locality` fallback augur publishes
 *   (weighted random between localities by augur's weights): what the weights alone are worth.
 *   HTTP/1.1 to a gateway there (xds-gateway.ts), one local hop like the RRM arm's proxy.
 * - augur-rrm: HTTP/1.1 requests through the demo data plane (src/rrm/dataplane.ts), which asks
 *   augur's RRM over ext_proc for every request, as Envoy does, and forwards the request to the
 *   endpoint it names. The data plane is a proxy in a process of its own, like Envoy
 *   (dataplane-host.ts): the backends answer it over HTTP on the same port they serve gRPC on.
 *   Its per-try timeout is the benchmark's deadline (the other arms have no retries either; a
 *   2 s per-try timeout would re-send slow requests elsewhere and hide the tail behind duplicate
 *   work).
 */
import * as grpc from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import { registerAugurBalancer } from '../../src/grpc-lb/index.js';
import { boundService, type BoundKind } from './bounds.js';
import type { DataPlaneOpen, DataPlaneOpened, GatewayOpen } from './dataplane-host.js';
import type { IpcClient } from './ipc.js';
import { cacheGrpcOrcaProto } from './orca-cache.js';
import { whenReady, xdsClient } from './xds-channel.js';
import {
  BACKEND_HEADER,
  ERROR_HEADER,
  QUEUE_HEADER,
  SERVICE_HEADER,
  WORK_HEADER,
  WORK_PATH,
  callWork,
} from './wire.js';

export const ARMS = [
  'round-robin',
  'wrr-orca',
  'augur-xds',
  'augur-xds-locality',
  'augur-rrm',
  'perfect-reactive',
  'oracle',
] as const;
export type ArmName = (typeof ARMS)[number];

export const ARM_DESCRIPTIONS: Record<ArmName, string> = {
  'round-robin': 'grpc-js `round_robin`',
  'wrr-orca': 'grpc-js `weighted_round_robin`, per-call ORCA (gRFC A58 defaults)',
  'augur-xds':
    "augur's xDS weights, `xds:///` through @grpc/grpc-js-xds with augur's `augur_expected_delay` policy registered",
  'augur-xds-locality':
    "augur's xDS weights alone: @grpc/grpc-js-xds without augur's policy (the `wrr_locality` fallback augur publishes: weighted random between localities), behind an HTTP gateway in the data-plane process",
  'augur-rrm': "augur's RRM: the demo data plane asks ext_proc per request, as Envoy does",
  'perfect-reactive': 'bound: xDS weights ∝ the true capacity of the step just ended',
  oracle: 'bound: xDS weights ∝ the true capacity of the step ahead',
};

/** How one request ended. */
export interface Outcome {
  ok: boolean;
  /** Backend index, -1 when the request failed. */
  backend: number;
  /** Time it queued and was served in the backend (0 when it failed). */
  queueMs: number;
  serviceMs: number;
  /** gRPC status name, `HTTP_<status>`, or a socket error code; `OK` on success. */
  code: string;
}

export interface ArmClient {
  send(work: number, deadlineMs: number, done: (outcome: Outcome) => void): void;
  /**
   * Closes the client; answers the requests that went another way than the arm intends (e.g.
   * the RRM not answering in time), by reason.
   */
  close(): Promise<Record<string, number>>;
}

export interface ArmTargets {
  service: string;
  backends: ReadonlyArray<{ id: string; address: string }>;
  /** `augur serve`'s gRPC address (ADS). */
  augur: string;
  /** `augur serve`'s ext_proc fast path. */
  extProc: string;
  /** The bounds' ADS. */
  bounds: string;
  /** The data-plane process (dataplane-host.ts). */
  dataPlanes: IpcClient;
}

let xdsRegistered = false;

/** Opens one client of an arm and waits until it can send (connected, configured). */
export async function openArmClient(
  arm: ArmName,
  targets: ArmTargets,
  name: string,
  deadlineMs: number,
  readyWithinMs: number,
): Promise<ArmClient> {
  switch (arm) {
    case 'round-robin':
      return GrpcArmClient.open(staticTarget(targets), { round_robin: {} }, readyWithinMs);
    case 'wrr-orca':
      // The policy parses an ORCA report from every answer.
      cacheGrpcOrcaProto();
      return GrpcArmClient.open(staticTarget(targets), { weighted_round_robin: {} }, readyWithinMs);
    case 'augur-xds':
      return GrpcArmClient.openXds(targets.augur, targets.service, name, readyWithinMs);
    case 'perfect-reactive':
    case 'oracle':
      return GrpcArmClient.openXds(
        targets.bounds,
        boundService(targets.service, arm satisfies BoundKind),
        name,
        readyWithinMs,
      );
    case 'augur-xds-locality':
      return DataPlaneArmClient.openGateway(targets, name, deadlineMs, readyWithinMs);
    case 'augur-rrm':
      return DataPlaneArmClient.open(targets, deadlineMs);
  }
}

function staticTarget(targets: ArmTargets): string {
  return `ipv4:${targets.backends.map((b) => b.address).join(',')}`;
}

class GrpcArmClient implements ArmClient {
  private closed = false;

  private constructor(private readonly client: grpc.Client) {}

  static async open(
    target: string,
    policy: Record<string, object>,
    readyWithinMs: number,
  ): Promise<GrpcArmClient> {
    return GrpcArmClient.ready(
      new grpc.Client(target, grpc.credentials.createInsecure(), {
        'grpc.service_config': JSON.stringify({ loadBalancingConfig: [policy] }),
        'grpc.use_local_subchannel_pool': 1,
      }),
      readyWithinMs,
    );
  }

  static async openXds(
    ads: string,
    service: string,
    name: string,
    readyWithinMs: number,
  ): Promise<GrpcArmClient> {
    if (!xdsRegistered) {
      // augur's per-call picker first (process-wide: the bounds' channels use it too, over their
      // own weights), then grpc-js-xds, which reads the policy augur publishes for the cluster.
      registerAugurBalancer();
      (await import('@grpc/grpc-js-xds')).register();
      xdsRegistered = true;
    }
    return GrpcArmClient.ready(xdsClient(ads, service, name), readyWithinMs);
  }

  private static async ready(client: grpc.Client, withinMs: number): Promise<GrpcArmClient> {
    await whenReady(client, withinMs);
    return new GrpcArmClient(client);
  }

  send(work: number, deadlineMs: number, done: (outcome: Outcome) => void): void {
    if (this.closed) {
      done(failed('CLIENT_CLOSED'));
      return;
    }
    callWork(this.client, work, deadlineMs, (result) =>
      done(typeof result === 'string' ? failed(result) : { ok: true, code: 'OK', ...result }),
    );
  }

  async close(): Promise<Record<string, number>> {
    this.closed = true;
    this.client.close();
    return {};
  }
}

class DataPlaneArmClient implements ArmClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  private closing: Promise<Record<string, number>> | undefined;

  private constructor(
    private readonly dataPlanes: IpcClient,
    private readonly id: number,
    private readonly host: string,
    private readonly port: number,
  ) {}

  static async open(targets: ArmTargets, deadlineMs: number): Promise<DataPlaneArmClient> {
    const opened = await targets.dataPlanes.call<DataPlaneOpened>('open', {
      extProc: targets.extProc,
      service: targets.service,
      fallbackHosts: targets.backends.map((b) => b.address),
      upstreamTimeoutMs: deadlineMs,
    } satisfies DataPlaneOpen);
    return DataPlaneArmClient.at(targets, opened);
  }

  /** A gateway to grpc-js-xds channels without augur's policy (xds-gateway.ts). */
  static async openGateway(
    targets: ArmTargets,
    name: string,
    deadlineMs: number,
    readyWithinMs: number,
  ): Promise<DataPlaneArmClient> {
    const opened = await targets.dataPlanes.call<DataPlaneOpened>(
      'open',
      {
        gateway: {
          ads: targets.augur,
          service: targets.service,
          node: name,
          deadlineMs,
          readyWithinMs,
        },
      } satisfies GatewayOpen,
      readyWithinMs + 5_000,
    );
    return DataPlaneArmClient.at(targets, opened);
  }

  private static at(targets: ArmTargets, opened: DataPlaneOpened): DataPlaneArmClient {
    const { hostname, port } = new URL(opened.url);
    return new DataPlaneArmClient(targets.dataPlanes, opened.id, hostname, Number(port));
  }

  send(work: number, deadlineMs: number, done: (outcome: Outcome) => void): void {
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done(outcome);
    };
    const req = request(
      {
        host: this.host,
        port: this.port,
        method: 'POST',
        path: WORK_PATH,
        agent: this.agent,
        headers: { [WORK_HEADER]: String(work), 'content-length': 0 },
      },
      (res) => {
        res.resume();
        res.once('end', () => {
          const backend = Number(res.headers[BACKEND_HEADER]);
          if (res.statusCode !== 200 || !Number.isInteger(backend)) {
            // A gateway names the gRPC status; a data plane answers its HTTP status alone.
            const why = res.headers[ERROR_HEADER];
            finish(failed(typeof why === 'string' && why ? why : `HTTP_${res.statusCode}`));
            return;
          }
          finish({
            ok: true,
            code: 'OK',
            backend,
            queueMs: Number(res.headers[QUEUE_HEADER]),
            serviceMs: Number(res.headers[SERVICE_HEADER]),
          });
        });
        res.once('error', (err: NodeJS.ErrnoException) => finish(failed(err.code ?? 'ERROR')));
      },
    );
    const timer = setTimeout(() => {
      finish(failed('DEADLINE_EXCEEDED'));
      req.destroy();
    }, deadlineMs);
    req.once('error', (err: NodeJS.ErrnoException) => finish(failed(err.code ?? 'ERROR')));
    req.end();
  }

  close(): Promise<Record<string, number>> {
    this.closing ??= (async () => {
      this.agent.destroy();
      return this.dataPlanes.call<Record<string, number>>('close', { id: this.id });
    })();
    return this.closing;
  }
}

function failed(code: string): Outcome {
  return { ok: false, backend: -1, queueMs: 0, serviceMs: 0, code };
}
