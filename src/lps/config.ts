import { z } from 'zod';
import { DEFAULT_DETAIL } from './ring.js';

/** How endpoint host names become the IPs published in the lists (see host-names.ts). */
export const hostNamesConfigSchema = z
  .object({
    /** Resolve host names agents report; off: such endpoints get no IP (xDS leaves them out). */
    resolve: z.boolean().default(true),
    /** A resolved name is looked up again after this many seconds (or its DNS TTL if shorter). */
    ttl: z.number().positive().default(30),
    /** After a failed lookup the name is tried again after this many seconds, doubling each time... */
    retryInitial: z.number().positive().default(1),
    /** ... up to this many. */
    retryMax: z.number().positive().default(30),
    /** One lookup may take this many seconds. */
    timeout: z.number().positive().default(5),
    /**
     * DNS servers (`ip` or `ip:port`) to ask instead of the OS resolver; empty: the OS resolver
     * (getaddrinfo, which reads /etc/hosts and the search domains).
     */
    servers: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((c) => c.retryMax >= c.retryInitial, {
    message: 'retryMax must be >= retryInitial',
  });

export type HostNamesConfig = z.infer<typeof hostNamesConfigSchema>;

/** Options of the Load Prediction Service; defaults live here and nowhere else. */
export const lpsConfigSchema = z
  .object({
    /** Monitoring interval given to agents that do not ask for another, seconds. */
    defaultInterval: z.number().positive().default(1),
    /** Bounds of any monitoring interval an agent or a caller may ask for, seconds. */
    minInterval: z.number().positive().default(0.1),
    maxInterval: z.number().positive().default(300),
    /** An endpoint silent for this many of its intervals is stale and scores 0. */
    staleAfterIntervals: z.number().positive().default(3),
    /**
     * Samples kept per endpoint (ring buffer): the newest detailSamples with every signal, the
     * older ones with their timestamp and CPU only (the history the dashboard plots).
     */
    ringSize: z.number().int().min(16).max(100_000).default(720),
    /**
     * Newest samples per endpoint kept with every signal (at most ringSize): what the forecasters
     * start from, what a snapshot keeps (persistSamples) and what the swap judge reads.
     */
    detailSamples: z.number().int().min(16).max(100_000).default(DEFAULT_DETAIL),
    /** A sample whose timestamp is further than this from the LPS clock is rejected, seconds. */
    maxClockSkew: z.number().positive().default(30),
    /** A sample older than this (a long-buffered replay) is rejected, seconds. */
    maxSampleAge: z.number().positive().default(3600),
    /**
     * Acknowledge a sample only once it is on disk (appended to the sample log in the data dir and
     * fsynced, in batches): every acknowledged sample then survives a crash of the LPS. Off: acks
     * go out on receipt and only the snapshots are written, so a crash loses what came since the
     * last one (the agents have already dropped it).
     */
    durableAcks: z.boolean().default(true),
    /**
     * How often a snapshot of the store is written to the data dir (the log segments it covers
     * are then deleted), seconds; 0: at shutdown and when the log passes logMaxBytes only.
     */
    persistInterval: z.number().min(0).default(60),
    /**
     * Newest samples per endpoint a snapshot keeps (enough for the forecasters' windows; up to
     * detailSamples keeps every sample the LPS holds with all its signals): older ones are not
     * restored after a restart.
     */
    persistSamples: z.number().int().min(0).default(128),
    /** A snapshot is written early once the sample log holds this many bytes. */
    logMaxBytes: z
      .number()
      .int()
      .positive()
      .default(64 << 20),
    /**
     * Samples not on disk yet (waiting for a slow or failing disk) may hold this many bytes; past
     * it, agents are turned away with UNAVAILABLE until the log catches up.
     */
    maxUnsyncedBytes: z
      .number()
      .int()
      .positive()
      .default(64 << 20),
    /** Less free space than this in the data dir at start is reported as an error, bytes. */
    minFreeBytes: z
      .number()
      .int()
      .min(0)
      .default(64 << 20),
    /** How often prioritized lists are recomputed, seconds (at the latest: see scoreOnReports). */
    scoreInterval: z.number().positive().default(1),
    /**
     * A tick comes early, as soon as this share of the connected endpoints that report once per
     * tick (monitoring interval within ±25 % of scoreInterval) have sent a sample since the last
     * one, but no sooner than half a scoreInterval after it: the lists then follow the newest
     * samples within milliseconds instead of up to an interval later (agents sample at whole
     * multiples of their interval on the host clock, so a fleet reports together). 0: ticks on the
     * clock only.
     */
    scoreOnReports: z.number().min(0).max(1).default(0.95),
    /** Largest message an agent may send, bytes. */
    maxMessageBytes: z
      .number()
      .int()
      .positive()
      .default(1 << 20),
    /** Most samples in one replay batch. */
    maxBatchSamples: z.number().int().positive().default(10_000),
    /** Endpoints that left (stale for this long) are forgotten, seconds. */
    forgetAfter: z.number().positive().default(3600),
    /**
     * An endpoint that never stored a sample is forgotten this long after its last hello once
     * no stream reports it, seconds (a hello alone costs a record: a flood of ids must not stay
     * for forgetAfter).
     */
    forgetUnsampledAfter: z.number().positive().default(60),
    /** Most endpoints the LPS holds; a hello for a new one past it is refused (RESOURCE_EXHAUSTED). */
    maxEndpoints: z.number().int().positive().default(5000),
    /** Most endpoints one service holds; a hello past it is refused (RESOURCE_EXHAUSTED). */
    maxEndpointsPerService: z.number().int().positive().default(1000),
    /**
     * Most Report streams open at once in all, whatever their connection or client; a further
     * stream is refused with RESOURCE_EXHAUSTED when it starts, before any of its messages is
     * read. Each open stream costs about 80 KB beyond its endpoint's record: maxEndpoints plus
     * room for agents reconnecting while their old stream is not yet closed.
     */
    maxStreams: z.number().int().positive().default(6000),
    /**
     * Most WatchPrioritizedEndpoints streams open at once in all (RRMs and other readers of the
     * lists); a further one is refused with RESOURCE_EXHAUSTED when it starts.
     */
    maxWatchStreams: z.number().int().positive().default(1000),
    /**
     * Most WatchPrioritizedEndpoints streams open at once from one client (src/common/peer.ts:
     * its IP address, as for maxStreamsPerClient), so one client cannot take every place of
     * maxWatchStreams; a further one is refused with RESOURCE_EXHAUSTED when it starts.
     */
    maxWatchStreamsPerClient: z.number().int().positive().default(100),
    /** Most Report streams open at once on one connection (RESOURCE_EXHAUSTED past it). */
    maxStreamsPerConnection: z.number().int().positive().default(1000),
    /**
     * Most Report streams open at once from one client (src/common/peer.ts: its IP address, so
     * agents behind one NAT count together); RESOURCE_EXHAUSTED past it.
     */
    maxStreamsPerClient: z.number().int().positive().default(10_000),
    /**
     * Samples one stream may send per second, on average; samples past it are refused with
     * RATE_LIMITED in the stream's error messages, and the stream stays open.
     */
    maxSamplesPerSecond: z.number().positive().default(100),
    /**
     * Samples a stream may send at once above that rate (a token bucket this deep: an agent
     * replaying what it buffered while the LPS was away).
     */
    sampleBurst: z.number().int().positive().default(20_000),
    /**
     * Largest encoded reply for one service (a prioritized list, its EDS resource) or one
     * ListEndpoints answer, bytes: past it the largest endpoints are left out of that reply (and
     * counted in augur_lps_reply_endpoints_dropped_total), never the whole service. Below gRPC's
     * 4 MiB message limit.
     */
    maxReplyBytes: z
      .number()
      .int()
      .min(64 << 10)
      .default(3 << 20),
    hostnames: hostNamesConfigSchema.default(() => hostNamesConfigSchema.parse({})),
  })
  .strict();

export type LpsConfig = z.infer<typeof lpsConfigSchema>;
