/**
 * One `augur serve` for bench:security's memory sections (`--only=partial`, `--only=flood`), in a
 * process of its own so its memory is the server's alone. It runs from a tree's `bench/` folder
 * (this checkout's, or a base commit's `git archive`d by bench/security.ts) and imports that
 * tree's src. Over IPC: it sends `{ grpc, extProc }` once listening; `measure` answers the
 * memory after a full collection; `stop` stops it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/serve/config.js';
import { startControlPlane } from '../src/serve/control-plane.js';

const dataDir = mkdtempSync(join(tmpdir(), 'augur-bench-memory-'));
const plane = await startControlPlane({
  config: loadConfig({
    env: {},
    flags: {
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      rrm: { extProcListen: '127.0.0.1:0' },
      forecast: { lstm: { enabled: false } },
    },
  }),
});
const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'measure') {
    gc?.();
    gc?.();
    const u = process.memoryUsage();
    process.send!({
      rss: u.rss,
      heapUsed: u.heapUsed,
      external: u.external,
      arrayBuffers: u.arrayBuffers,
      endpoints: plane.lps.store.size,
      // A base tree without the counter (before lps.maxStreams) answers -1.
      streams: (plane.lps.telemetry as { openStreams?: number }).openStreams ?? -1,
    });
  } else if (m.cmd === 'stop') {
    void plane.stop().then(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  }
});
process.send!({ grpc: plane.grpcAddress, extProc: plane.extProcAddress });
