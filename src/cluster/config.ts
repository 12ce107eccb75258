import { z } from 'zod';

/**
 * Options of cluster mode (src/cluster): several `augur serve` replicas sharing one Redis.
 * Defaults live here and nowhere else. Without `redis`, augur runs as one process (the default).
 */
export const clusterConfigSchema = z
  .object({
    /**
     * `redis://[user:password@]HOST:PORT[/DB]` (or `rediss://` for TLS) of the Redis (>= 7, a
     * single server, not Redis Cluster) the replicas share; empty: single-process mode.
     */
    redis: z
      .string()
      .default('')
      .refine((s) => s === '' || /^rediss?:\/\/[^/\s]+(\/\d+)?$/.test(s), {
        message: 'cluster.redis must be redis://HOST:PORT (or rediss://, optionally /DB), or empty',
      }),
    /**
     * Seconds a service's lease (and a replica's heartbeat) lasts without renewal. A killed
     * owner's services are taken over within leaseTtl + renewInterval (4 s by default).
     */
    leaseTtl: z.number().min(1).max(120).default(3),
    /** Seconds between renewals, heartbeats and rebalancing; must be under a third of leaseTtl. */
    renewInterval: z.number().min(0.1).max(40).default(1),
    /** This replica's name in Redis; empty: `<host name>:<pid>`. Unique among live replicas. */
    replicaId: z
      .string()
      .max(128)
      .regex(/^[^\s]*$/, 'cluster.replicaId must not contain white space')
      .default(''),
    /** Prefix of every Redis key augur uses, so several augur clusters may share one Redis. */
    keyPrefix: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_.:-]+$/, 'cluster.keyPrefix: letters, digits, _ . : - only')
      .default('augur'),
    /**
     * Entries (agent messages) each service's sample stream keeps (XADD MAXLEN ~): what a new
     * owner replays to rebuild the history of the service's endpoints.
     */
    streamMaxLen: z.number().int().min(100).max(10_000_000).default(100_000),
    /**
     * Samples a replica may hold that Redis has not taken yet (Redis unreachable); past it agents'
     * streams are refused with UNAVAILABLE (they keep the samples and come back later).
     */
    maxForwardBacklog: z.number().int().min(100).max(10_000_000).default(50_000),
    /**
     * Seconds between checkpoints of each owned service's learnt forecaster state (the cost per
     * request and the weight controller's state of its endpoints), which its next owner restores
     * before its first list; also written when a replica stops cleanly. 0: none.
     */
    checkpointInterval: z.number().min(0).max(3600).default(5),
  })
  .strict()
  .refine((c) => c.renewInterval * 3 <= c.leaseTtl, {
    message: 'cluster.renewInterval must be at most a third of cluster.leaseTtl',
  });

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;
