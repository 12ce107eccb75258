import { Counter, Gauge, type Registry } from 'prom-client';
import type { PublishOutcome } from './publisher.js';
import type { SotwCallbacks } from './sotw-server.js';

/**
 * The xDS server's Prometheus metrics, registered on the process's registry, fed through the
 * protocol's and the publisher's callbacks.
 */
export class XdsMetrics {
  readonly streams: Gauge<'client_kind'>;
  readonly responses: Counter<'type_url'>;
  readonly nacks: Counter<'type_url' | 'client_kind'>;
  readonly staleNonces: Counter<'type_url'>;
  readonly publishes: Counter<'outcome'>;
  readonly refused: Counter<'limit'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.streams = new Gauge({
      name: 'augur_xds_streams',
      help: 'Open ADS streams, by kind of client',
      labelNames: ['client_kind'],
      registers,
    });
    this.responses = new Counter({
      name: 'augur_xds_responses_total',
      help: 'DiscoveryResponses sent, by resource type',
      labelNames: ['type_url'],
      registers,
    });
    this.nacks = new Counter({
      name: 'augur_xds_nacks_total',
      help: 'DiscoveryResponses a client rejected (NACK); it keeps its last good version',
      labelNames: ['type_url', 'client_kind'],
      registers,
    });
    this.staleNonces = new Counter({
      name: 'augur_xds_stale_nonce_requests_total',
      help: 'Requests ignored because they answered a response that was already superseded',
      labelNames: ['type_url'],
      registers,
    });
    this.refused = new Counter({
      name: 'augur_xds_streams_refused_total',
      help:
        'ADS streams refused when they started, by limit: max_streams (xds.maxStreams were open) ' +
        'or max_streams_per_client (xds.maxStreamsPerClient were open from that client)',
      labelNames: ['limit'],
      registers,
    });
    this.publishes = new Counter({
      name: 'augur_xds_publish_total',
      help: 'Prioritized lists seen by the xDS publisher: published, or skipped by hysteresis',
      labelNames: ['outcome'],
      registers,
    });
  }

  /** The protocol server's callbacks that keep these metrics. */
  readonly protocol: SotwCallbacks = {
    onStreamOpen: (_id, group) => this.streams.inc({ client_kind: group }),
    onStreamClosed: (_id, group) => this.streams.dec({ client_kind: group }),
    onResponse: (_id, typeUrl) => this.responses.inc({ type_url: typeUrl }),
    onNack: (_id, group, typeUrl) => this.nacks.inc({ type_url: typeUrl, client_kind: group }),
    onStaleNonce: (_id, typeUrl) => this.staleNonces.inc({ type_url: typeUrl }),
    onStreamRefused: (limit) => this.refused.inc({ limit }),
  };

  /** The publisher's callback that counts what became of each list. */
  readonly onPublishOutcome = (outcome: PublishOutcome): void => {
    this.publishes.inc({ outcome });
  };
}
