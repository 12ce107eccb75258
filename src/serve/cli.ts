import type { Command } from 'commander';

interface ServeFlags {
  grpcListen?: string;
  httpListen?: string;
  extProcListen?: string;
  dataDir?: string;
  config?: string;
  logLevel?: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the control plane: LPS, xDS, RRM (ext_proc), metrics and dashboard')
    .option('--grpc-listen <host:port>', 'gRPC address for every service (default 127.0.0.1:18000)')
    .option(
      '--http-listen <host:port>',
      'HTTP address for /metrics, /healthz, /dashboard (default 127.0.0.1:18080)',
    )
    .option(
      '--ext-proc-listen <host:port>',
      'extra address for Envoy ext_proc streams only, on node:http2 directly (the fast path; rrm.extProcListen)',
    )
    .option('--data-dir <dir>', 'where learned state is kept (default ./.augur)')
    .option('--config <file>', 'YAML config file (also AUGUR_CONFIG)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(async (flags: ServeFlags) => {
      // Loaded here, not at the top: `augur agent` shares this CLI and must stay small.
      const [{ loadConfig }, { stopOnSignals }, { startControlPlane }] = await Promise.all([
        import('../common/config.js'),
        import('../common/lifecycle.js'),
        import('./control-plane.js'),
      ]);
      const config = loadConfig({
        file: flags.config,
        flags: {
          grpcListen: flags.grpcListen,
          httpListen: flags.httpListen,
          ...(flags.extProcListen !== undefined && { rrm: { extProcListen: flags.extProcListen } }),
          dataDir: flags.dataDir,
          logLevel: flags.logLevel,
        },
      });
      const plane = await startControlPlane({ config });
      stopOnSignals(plane.logger, () => plane.stop());
    });
}
