import type { Command } from 'commander';
import { parseHostPort } from '../common/address.js';
import { parseDurationSeconds } from '../common/duration.js';
import { AugurError } from '../common/errors.js';
import { stopOnSignals } from '../common/lifecycle.js';
import { createLogger } from '../common/logger.js';
import { DEMO_DEFAULTS } from './defaults.js';

interface DemoFlags {
  grpcListen: string;
  httpListen: string;
  extProcListen: string;
  proxyListen: string;
  dataDir: string;
  rate: string;
  duration?: string;
  table: boolean;
}

/** `augur demo` (what `npm start` runs). */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a working demo in one process: control plane, 3 backends with agents, data plane, load',
    )
    .option('--grpc-listen <host:port>', 'control plane gRPC address', DEMO_DEFAULTS.grpcListen)
    .option('--http-listen <host:port>', 'dashboard and /metrics address', DEMO_DEFAULTS.httpListen)
    .option(
      '--ext-proc-listen <host:port>',
      "the RRM's ext_proc fast path, which the data plane asks",
      DEMO_DEFAULTS.extProcListen,
    )
    .option('--proxy-listen <host:port>', 'demo data plane address', DEMO_DEFAULTS.proxyListen)
    .option('--data-dir <dir>', 'where learned state is kept', DEMO_DEFAULTS.dataDir)
    .option(
      '--rate <rps>',
      'requests per second through the data plane',
      String(DEMO_DEFAULTS.rate),
    )
    .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C)')
    .option('--no-table', 'print only the banner and the swap lines')
    .action(async (flags: DemoFlags) => {
      for (const [flag, value] of [
        ['--grpc-listen', flags.grpcListen],
        ['--http-listen', flags.httpListen],
        ['--proxy-listen', flags.proxyListen],
        ['--ext-proc-listen', flags.extProcListen],
      ] as const) {
        parseHostPort(value, flag);
      }
      const rate = Number(flags.rate);
      if (!Number.isFinite(rate) || rate <= 0) {
        throw new AugurError('BAD_FLAG', `--rate must be a number > 0, got "${flags.rate}"`);
      }
      const { runDemo } = await import('./demo.js');
      const demo = await runDemo({
        grpcListen: flags.grpcListen,
        httpListen: flags.httpListen,
        extProcListen: flags.extProcListen,
        proxyListen: flags.proxyListen,
        dataDir: flags.dataDir,
        rate,
        durationSeconds: flags.duration ? parseDurationSeconds(flags.duration, '--duration') : 0,
        table: flags.table,
      });
      stopOnSignals(createLogger('augur-demo', 'warn'), () => demo.stop());
      await demo.done;
      process.exit(0);
    });
}
