// Parts load inside each action: `augur agent` shares this CLI and must stay small.
import type { Command } from 'commander';
import { AugurError } from '../common/errors.js';

interface DataPlaneFlags {
  rrm: string;
  listen: string;
  route?: string;
  cluster?: string;
  retries: string;
  messageTimeout: string;
  fallbackHosts?: string;
  /** Commander's `--no-response-phase`: false when given. */
  responsePhase: boolean;
  logLevel?: string;
}

/**
 * `augur dataplane` (the demo proxy). `augur rrm`, the RRM alone against a remote LPS, is
 * assembled in src/serve beside `augur serve`.
 */
export function registerDataPlaneCommand(program: Command): void {
  program
    .command('dataplane')
    .description(
      'run the demo data plane: an HTTP proxy that asks the RRM over ext_proc as Envoy would (not a replacement for Envoy)',
    )
    .requiredOption(
      '--rrm <host:port>',
      "the RRM's ext_proc address (augur serve's or augur rrm's --ext-proc-listen, or its gRPC address)",
    )
    .option('--listen <host:port>', 'HTTP address to proxy on', '127.0.0.1:10000')
    .option('--route <name>', 'sent as the xds.route_name attribute')
    .option(
      '--cluster <name>',
      'sent as the xds.cluster_name attribute (augur maps it to a service)',
    )
    .option('--retries <n>', 'retries after the first attempt (Envoy num_retries)', '2')
    .option('--message-timeout <ms>', 'ext_proc answer timeout, ms (Envoy message_timeout)', '200')
    .option(
      '--fallback-hosts <list>',
      'ip:port,... balanced round robin when the RRM gives no answer',
    )
    .option(
      '--no-response-phase',
      'send the RRM request headers only (Envoy response_header_mode: SKIP): it then counts a request in flight until its stream ends and learns no latency',
    )
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .action(async (flags: DataPlaneFlags) => {
      const retries = Number(flags.retries);
      const timeout = Number(flags.messageTimeout);
      if (!Number.isInteger(retries) || retries < 0) {
        throw new AugurError('BAD_FLAG', `--retries "${flags.retries}" must be an integer >= 0`);
      }
      if (!Number.isFinite(timeout) || timeout <= 0) {
        throw new AugurError(
          'BAD_FLAG',
          `--message-timeout "${flags.messageTimeout}" must be a number of ms > 0`,
        );
      }
      const [{ createLogger }, { stopOnSignals }, { DataPlane }] = await Promise.all([
        import('../common/logger.js'),
        import('../common/lifecycle.js'),
        import('./dataplane.js'),
      ]);
      const logger = createLogger('augur-dataplane', (flags.logLevel ?? 'info') as 'info');
      const plane = new DataPlane({
        listen: flags.listen,
        rrm: flags.rrm,
        routeName: flags.route,
        clusterName: flags.cluster,
        retries,
        messageTimeoutMs: timeout,
        responsePhase: flags.responsePhase,
        fallbackHosts: flags.fallbackHosts?.split(',').filter((h) => h.trim() !== '') ?? [],
        logger,
      });
      await plane.start();
      stopOnSignals(logger, () => plane.stop());
    });
}
