import { z } from 'zod';
import { swapConfigSchema } from '../lps/swaps.js';

/** The dashboard and the swap detector it shows: `dashboard:` in the config. */
export const dashboardConfigSchema = z
  .object({
    /** Serve /dashboard on the HTTP address. */
    enabled: z.boolean().default(true),
    /**
     * Shortest time between two updates sent to a browser, ms: changes in
     * between are coalesced into one frame.
     */
    updateIntervalMs: z.number().int().min(50).max(60_000).default(500),
    /** Recent samples per endpoint sent to a browser that connects (the plot's history). */
    plotSamples: z.number().int().min(2).max(10_000).default(150),
    /**
     * A browser whose connection has this many bytes unsent skips updates and
     * gets a fresh snapshot once it has caught up.
     */
    maxBufferedBytes: z
      .number()
      .int()
      .positive()
      .default(4 << 20),
    swaps: swapConfigSchema.default(() => swapConfigSchema.parse({})),
  })
  .strict();

export type DashboardConfig = z.infer<typeof dashboardConfigSchema>;
