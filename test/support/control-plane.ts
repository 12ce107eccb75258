import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/serve/config.js';
import type { Logger } from '../../src/common/logger.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';

export interface TestPlane extends ControlPlane {
  dataDir: string;
  /** Stops the plane and removes its data dir. */
  dispose(): Promise<void>;
}

/**
 * A real control plane on loopback with ports chosen by the OS and a fresh data
 * dir. `flags` override config keys (e.g. `{ lps: { staleAfterIntervals: 2 } }`);
 * `logger` receives its log (silent unless `flags.logLevel` says otherwise).
 */
export async function startTestPlane(
  flags: Record<string, unknown> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'augur-test-')),
  logger?: Logger,
): Promise<TestPlane> {
  const config = loadConfig({
    env: {},
    flags: {
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      ...flags,
    },
  });
  const plane = await startControlPlane({ config, logger });
  return {
    ...plane,
    dataDir,
    dispose: async () => {
      await plane.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, undefined | null | false>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
