import type { Command } from 'commander';

/** The flags both commands share, each a config key (flags win over file and environment). */
interface ServerFlags {
  grpcListen?: string;
  httpListen?: string;
  extProcListen?: string;
  extProcWorkers?: string;
  config?: string;
  logLevel?: string;
  insecure?: boolean;
  allowedHosts?: string;
}

interface ServeFlags extends ServerFlags {
  dataDir?: string;
  cluster?: string;
}

interface RrmFlags extends ServerFlags {
  lps: string;
}

/** Loads the configuration with the command's flags on top; loaded lazily, as the CLI must stay small. */
async function configOf(flags: ServeFlags) {
  const { loadConfig } = await import('./config.js');
  return loadConfig({
    file: flags.config,
    flags: {
      grpcListen: flags.grpcListen,
      httpListen: flags.httpListen,
      rrm: {
        ...(flags.extProcListen !== undefined && { extProcListen: flags.extProcListen }),
        ...(flags.extProcWorkers !== undefined && {
          extProcWorkers: /^\d+$/.test(flags.extProcWorkers)
            ? Number(flags.extProcWorkers)
            : flags.extProcWorkers,
        }),
      },
      dataDir: flags.dataDir,
      ...(flags.cluster !== undefined && { cluster: { redis: flags.cluster } }),
      logLevel: flags.logLevel,
      ...(flags.insecure && { security: { insecure: true } }),
      ...(flags.allowedHosts !== undefined && {
        http: { allowedHosts: hostList(flags.allowedHosts) },
      }),
    },
  });
}

/**
 * `--allowed-hosts a,b`: the names, each trimmed; an empty list (`--allowed-hosts ''`) allows only
 * the names always accepted. The config schema judges each name (an empty one among them is an
 * error naming http.allowedHosts).
 */
export function hostList(value: string): string[] {
  return value.trim() === '' ? [] : value.split(',').map((name) => name.trim());
}

const ALLOWED_HOSTS_HELP =
  'comma-separated Host names the HTTP address answers besides its own: exact names, *.domain, or * for any (http.allowedHosts; others get 421, against DNS rebinding)';

/**
 * The commands that assemble server processes from the parts: `augur serve` (the control plane)
 * and `augur rrm` (the RRM alone, fed by a remote LPS). Both read the same configuration file.
 */
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
    .option(
      '--ext-proc-workers <n|auto>',
      'processes serving the fast path, sharing its port (auto: one per core; rrm.extProcWorkers)',
    )
    .option('--allowed-hosts <list>', ALLOWED_HOSTS_HELP)
    .option('--data-dir <dir>', 'where learned state is kept (default ./.augur)')
    .option(
      '--cluster <redis://host:port>',
      'cluster mode: share services with the other replicas on this Redis (cluster.redis)',
    )
    .option('--config <file>', 'YAML config file (also AUGUR_CONFIG)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option(
      '--insecure',
      'allow plaintext on addresses other than loopback (security.insecure); without it augur refuses to start',
    )
    .action(async (flags: ServeFlags) => {
      // Loaded here, not at the top: `augur agent` shares this CLI and must stay small.
      const [config, { stopOnSignals }, { startControlPlane }] = await Promise.all([
        configOf(flags),
        import('../common/lifecycle.js'),
        import('./control-plane.js'),
      ]);
      const plane = await startControlPlane({ config });
      stopOnSignals(plane.logger, () => plane.stop());
    });

  program
    .command('rrm')
    .description(
      'run the Response Routing Module alone: Envoy ext_proc endpoint picker and RouteResponse',
    )
    .requiredOption(
      '--lps <host:port>',
      'gRPC address of the LPS (augur serve) to watch lists from',
    )
    .option(
      '--grpc-listen <host:port>',
      'gRPC address for ext_proc and ResponseRouter (default 127.0.0.1:18000)',
    )
    .option(
      '--http-listen <host:port>',
      'HTTP address for /metrics and /healthz (default 127.0.0.1:18080)',
    )
    .option('--allowed-hosts <list>', ALLOWED_HOSTS_HELP)
    .option(
      '--ext-proc-listen <host:port>',
      'extra address for Envoy ext_proc streams only, on node:http2 directly (the fast path; rrm.extProcListen)',
    )
    .option(
      '--ext-proc-workers <n|auto>',
      'processes serving the fast path, sharing its port (auto: one per core; rrm.extProcWorkers)',
    )
    .option('--config <file>', 'YAML config file (also AUGUR_CONFIG); the rrm section applies')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option(
      '--insecure',
      'allow plaintext on addresses other than loopback (security.insecure); without it augur refuses to start',
    )
    .action(async (flags: RrmFlags) => {
      const [config, { stopOnSignals }, { startStandaloneRrm }] = await Promise.all([
        configOf(flags),
        import('../common/lifecycle.js'),
        import('./rrm-standalone.js'),
      ]);
      const rrm = await startStandaloneRrm({ config, lps: flags.lps });
      stopOnSignals(rrm.logger, () => rrm.stop());
    });
}
