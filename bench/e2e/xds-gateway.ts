/**
 * The augur-xds-locality arm's clients: @grpc/grpc-js-xds channels on `xds:///<service>` against
 * `augur serve`'s ADS in a process that did *not* register augur's `augur_expected_delay` policy,
 * so they take the fallback augur publishes second in the cluster's load_balancing_policy list
 * (gRFC A52): `wrr_locality`, weighted random between localities by augur's weights. That is
 * what augur's weights alone do for a gRPC client that did not add augur's package: the arm that
 * tells what the weights are worth from what the per-call picker adds.
 *
 * grpc-js registers load-balancing policies process-wide, and the harness registers augur's for
 * the augur-xds arm and the bounds, so these channels live in the data-plane process
 * (dataplane-host.ts), each behind a small HTTP/1.1 gateway the harness sends to as it does to
 * the RRM's data planes: one local hop, like the RRM arm's proxy.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { whenReady, xdsClient } from './xds-channel.js';
import { ERROR_HEADER, WORK_HEADER, WORK_PATH, callWork, checkWork, doneHeaders } from './wire.js';

export interface XdsGatewayOptions {
  /** `augur serve`'s ADS address. */
  ads: string;
  service: string;
  /** The xDS node id of this gateway's channel. */
  node: string;
  /** Each call's deadline, ms. */
  deadlineMs: number;
  /** How long the channel may take to get its configuration and connect, ms. */
  readyWithinMs: number;
}

let xdsRegistered = false;

export class XdsGateway {
  private readonly server: Server;
  private client: grpc.Client | undefined;
  private port = 0;

  constructor(private readonly options: XdsGatewayOptions) {
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.server.keepAliveTimeout = 60_000;
  }

  /** Opens the channel, waits until it is ready, then listens; answers the gateway's URL. */
  async start(): Promise<string> {
    if (!xdsRegistered) {
      // grpc-js-xds alone: its own policies (wrr_locality among them), not augur's.
      (await import('@grpc/grpc-js-xds')).register();
      xdsRegistered = true;
    }
    const { ads, service, node, readyWithinMs } = this.options;
    const client = xdsClient(ads, service, node);
    await whenReady(client, readyWithinMs);
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const fail = (status: number, why: string): void => {
      if (res.headersSent) return;
      res.writeHead(status, { [ERROR_HEADER]: why, 'content-length': 0 }).end();
    };
    let work: number;
    try {
      if (req.method !== 'POST' || req.url !== WORK_PATH) throw new Error('only POST /work');
      work = checkWork(Number(req.headers[WORK_HEADER]));
    } catch (err) {
      fail(400, (err as Error).message);
      return;
    }
    const client = this.client;
    if (!client) {
      fail(503, 'CLIENT_CLOSED');
      return;
    }
    callWork(client, work, this.options.deadlineMs, (result) => {
      if (typeof result === 'string') fail(503, result);
      else res.writeHead(200, { ...doneHeaders(result), 'content-length': 0 }).end();
    });
  }

  /** Stops listening, drops the harness's connections and closes the channel. */
  async stop(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
