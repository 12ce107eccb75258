import { z } from 'zod';
import { clusterConfigSchema } from '../cluster/config.js';
import { loadConfigWith, type LoadConfigOptions } from '../common/config.js';
import { dashboardConfigSchema } from '../dashboard/config.js';
import { forecastConfigSchema } from '../lps/forecast/config.js';
import { httpConfigSchema } from '../common/http-guard.js';
import { lpsConfigSchema } from '../lps/config.js';
import { rrmConfigSchema } from '../rrm/config.js';
import { securityConfigSchema } from '../common/security.js';
import { xdsConfigSchema } from '../xds/config.js';

/**
 * The whole configuration of `augur serve` (and of `augur rrm`, which reads the same file): each
 * part owns its section's schema and defaults; this file only composes them.
 */
export const configSchema = z
  .object({
    grpcListen: z.string().default('127.0.0.1:18000'),
    httpListen: z.string().default('127.0.0.1:18080'),
    /** The HTTP address's Host check (src/common/http-guard.ts, docs/security.md). */
    http: httpConfigSchema.default(() => httpConfigSchema.parse({})),
    dataDir: z.string().default('./.augur'),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    lps: lpsConfigSchema.default(() => lpsConfigSchema.parse({})),
    rrm: rrmConfigSchema.default(() => rrmConfigSchema.parse({})),
    xds: xdsConfigSchema.default(() => xdsConfigSchema.parse({})),
    forecast: forecastConfigSchema.default(() => forecastConfigSchema.parse({})),
    dashboard: dashboardConfigSchema.default(() => dashboardConfigSchema.parse({})),
    /** TLS, the plaintext rule and who may do what (src/common/security.ts, docs/security.md). */
    security: securityConfigSchema.default(() => securityConfigSchema.parse({})),
    /** Cluster mode: replicas sharing one Redis (src/cluster/config.ts); off by default. */
    cluster: clusterConfigSchema.default(() => clusterConfigSchema.parse({})),
  })
  .strict();

export type AugurConfig = z.infer<typeof configSchema>;

/** Loads `augur serve`'s configuration (defaults < file < AUGUR_* environment < flags). */
export function loadConfig(options: LoadConfigOptions = {}): AugurConfig {
  return loadConfigWith(configSchema, options);
}
