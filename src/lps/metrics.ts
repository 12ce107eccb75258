import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The LPS's Prometheus metrics, registered on the process's registry. */
export class LpsMetrics {
  readonly streams: Gauge;
  readonly samples: Counter;
  readonly rejected: Counter<'reason' | 'field'>;
  readonly duplicates: Counter;
  readonly endpoints: Gauge<'state'>;
  readonly protocolErrors: Counter<'code'>;
  readonly scoringSeconds: Histogram;
  readonly scoringTicks: Counter<'trigger'>;
  readonly sampleAgeAtScoring: Gauge;
  readonly listVersions: Counter;
  readonly unresolvedEndpoints: Gauge;
  readonly dataDirFreeBytes: Gauge;
  readonly stateWriteFailures: Counter<'file'>;
  readonly logSyncSeconds: Histogram;
  readonly hostLookups: Counter<'outcome'>;
  readonly limitRefusals: Counter<'limit'>;
  readonly replyDropped: Counter<'reply'>;
  readonly forgotten: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.streams = new Gauge({
      name: 'augur_lps_agent_streams',
      help: 'Open agent Report streams',
      registers,
    });
    this.samples = new Counter({
      name: 'augur_lps_samples_total',
      help: 'Samples accepted and stored (rate() gives samples/s)',
      registers,
    });
    this.rejected = new Counter({
      name: 'augur_lps_samples_rejected_total',
      help: 'Samples refused, by reason and field',
      labelNames: ['reason', 'field'],
      registers,
    });
    this.duplicates = new Counter({
      name: 'augur_lps_samples_duplicate_total',
      help: 'Samples dropped because their sequence was already stored (replays)',
      registers,
    });
    this.endpoints = new Gauge({
      name: 'augur_lps_endpoints',
      help: 'Known endpoints by state (active, stale, failing, draining)',
      labelNames: ['state'],
      registers,
    });
    this.protocolErrors = new Counter({
      name: 'augur_lps_stream_protocol_errors_total',
      help: 'Agent streams ended for a protocol violation, by gRPC status',
      labelNames: ['code'],
      registers,
    });
    this.scoringSeconds = new Histogram({
      name: 'augur_lps_scoring_duration_seconds',
      help: 'Time to score every endpoint and rebuild the prioritized lists',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.scoringTicks = new Counter({
      name: 'augur_lps_scoring_ticks_total',
      help: 'Scoring ticks by what started them: the clock (lps.scoreInterval), the reports (lps.scoreOnReports: the samples of the interval were in) or a change of membership',
      labelNames: ['trigger'],
      registers,
    });
    this.sampleAgeAtScoring = new Gauge({
      name: 'augur_lps_sample_age_at_scoring_seconds',
      help: 'At the last tick, how long ago the newest sample of each connected endpoint that reports once per tick had arrived (mean): how stale the data of a decision is',
      registers,
    });
    this.listVersions = new Counter({
      name: 'augur_lps_list_versions_total',
      help: 'New prioritized list versions published',
      registers,
    });
    this.unresolvedEndpoints = new Gauge({
      name: 'augur_lps_unresolved_endpoints',
      help: 'Endpoints whose host name has never resolved: left out of xDS (ListEndpoints says why)',
      registers,
    });
    this.dataDirFreeBytes = new Gauge({
      name: 'augur_lps_data_dir_free_bytes',
      help: 'Free bytes in the data dir, as of the last checkpoint',
      registers,
    });
    this.stateWriteFailures = new Counter({
      name: 'augur_lps_state_write_failures_total',
      help: 'Failed writes of the LPS state (file: log or snapshot); see the error log',
      labelNames: ['file'],
      registers,
    });
    this.logSyncSeconds = new Histogram({
      name: 'augur_lps_log_sync_seconds',
      help: 'From a record waiting for disk to its batch being fsynced: how long acks wait',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.hostLookups = new Counter({
      name: 'augur_lps_host_lookups_total',
      help: 'Lookups of endpoint host names, by outcome (resolved, failed)',
      labelNames: ['outcome'],
      registers,
    });
    this.limitRefusals = new Counter({
      name: 'augur_lps_limit_refusals_total',
      help:
        'What the LPS refused for a configured limit (lps.max*): hellos past maxEndpoints or ' +
        'maxEndpointsPerService, streams past maxStreams, maxStreamsPerConnection or ' +
        'maxStreamsPerClient, Watch streams past maxWatchStreams or maxWatchStreamsPerClient ' +
        '(counted once each), samples past maxSamplesPerSecond (counted per sample)',
      labelNames: ['limit'],
      registers,
    });
    this.replyDropped = new Counter({
      name: 'augur_lps_reply_endpoints_dropped_total',
      help:
        'Endpoints left out of a reply that would have passed lps.maxReplyBytes, by reply ' +
        '(list: each new version of a prioritized list, and so its EDS resource; ' +
        'list_endpoints: each ListEndpoints answer)',
      labelNames: ['reply'],
      registers,
    });
    this.forgotten = new Counter({
      name: 'augur_lps_endpoints_forgotten_total',
      help:
        'Endpoints forgotten, by reason (silent: lps.forgetAfter; unsampled: never sent a ' +
        'sample, lps.forgetUnsampledAfter)',
      labelNames: ['reason'],
      registers,
    });
  }
}
