/**
 * An independent observer of what an xDS server publishes: a raw ADS stream (src/xds's
 * RawAdsClient, Envoy's protos) subscribed to the ClusterLoadAssignments of some services,
 * ACKing each response and recording, with its arrival time, each backend's share of traffic as
 * gRPC clients read it (the locality weights). It counts the weight updates each arm's clients
 * were sent and lets the report compare published shares with the true capacity.
 */
import { RawAdsClient } from '../../src/xds/ads-client.js';
import { TypeUrl } from '../../src/xds/types.js';
import { nowMs } from './clock.js';

export interface PublishedShares {
  /** Epoch ms the assignment arrived. */
  at: number;
  /** By backend index; 0 for a backend left out of the assignment. */
  shares: Float64Array;
}

interface Cla {
  cluster_name?: string;
  endpoints?: Array<{
    // proto3 JSON: a UInt32Value wrapper is a plain number.
    load_balancing_weight?: number;
    lb_endpoints?: Array<{
      endpoint?: { address?: { socket_address?: { port_value?: number } } };
    }>;
  }>;
}

export class AssignmentWatcher {
  private readonly client: RawAdsClient;
  private readonly history = new Map<string, PublishedShares[]>();
  private closed = false;
  private readonly done: Promise<void>;
  /** Why the stream ended early, if it did (the arms it observed have no push counts then). */
  failure: Error | undefined;

  constructor(
    address: string,
    private readonly services: readonly string[],
    /** Backend index by port. */
    private readonly backendOfPort: ReadonlyMap<number, number>,
  ) {
    this.client = new RawAdsClient(address);
    this.client.send({
      node: { id: `e2e-observer-${process.pid}`, user_agent_name: 'augur bench:e2e observer' },
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: [...services],
    });
    this.done = this.read();
  }

  /** Assignments of `service` that arrived in [from, to) (epoch ms), with the last one before. */
  between(
    service: string,
    from: number,
    to: number,
  ): { before?: PublishedShares; within: PublishedShares[] } {
    const all = this.history.get(service) ?? [];
    const within = all.filter((a) => a.at >= from && a.at < to);
    const before = all.filter((a) => a.at < from).at(-1);
    return { before, within };
  }

  /** The newest assignment of `service`, if any. */
  latest(service: string): PublishedShares | undefined {
    return this.history.get(service)?.at(-1);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.close();
    await this.done;
  }

  private async read(): Promise<void> {
    for (;;) {
      let response;
      try {
        response = await this.client.next(3_600_000);
      } catch (err) {
        if (!this.closed)
          this.failure = new Error(`the xDS observer lost its stream: ${(err as Error).message}`);
        return;
      }
      const at = nowMs();
      this.client.send({
        type_url: response.type_url,
        resource_names: [...this.services],
        version_info: response.version_info,
        response_nonce: response.nonce,
      });
      for (const resource of response.resources) {
        const cla = this.client.decode(resource) as Cla;
        if (!cla.cluster_name) continue;
        const shares = new Float64Array(this.backendOfPort.size);
        for (const locality of cla.endpoints ?? []) {
          const weight = locality.load_balancing_weight ?? 0;
          for (const lb of locality.lb_endpoints ?? []) {
            const port = lb.endpoint?.address?.socket_address?.port_value ?? -1;
            const backend = this.backendOfPort.get(port);
            if (backend !== undefined) shares[backend] += weight;
          }
        }
        const total = shares.reduce((a, x) => a + x, 0);
        if (total > 0) for (let i = 0; i < shares.length; i++) shares[i] /= total;
        const list = this.history.get(cla.cluster_name) ?? [];
        list.push({ at, shares });
        this.history.set(cla.cluster_name, list);
      }
    }
  }
}
