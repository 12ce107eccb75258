import { cpus } from 'node:os';
import { Option, type Command } from 'commander';
import type { Locality } from '../gen/augur/v1/common.js';
import { AugurError } from '../common/errors.js';
import { parseDurationSeconds } from '../common/duration.js';
import type { OwnCpuSource } from './own-cpu.js';
import type { ProbeSpec } from './probe.js';

interface AgentFlags {
  lps: string;
  endpointId: string;
  service: string;
  address: string;
  healthUrl?: string;
  healthGrpc?: boolean;
  healthGrpcService?: string;
  healthTcp?: boolean;
  healthNone?: boolean;
  interval: string;
  /** False with --no-align. */
  align: boolean;
  healthTimeout: string;
  locality?: string;
  label: Record<string, string>;
  buffer: string;
  linkMbps: string;
  loadUrl?: string;
  processPid?: string;
  processName?: string;
  cgroup?: string;
  metricsUrl?: string;
  requestsMetric?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  tokenFile?: string;
  insecure?: boolean;
  latencyMetric?: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** `region/zone/subzone`; trailing parts may be left out. */
export function parseLocality(value: string): Locality {
  const parts = value.split('/');
  if (parts.length > 3 || parts.some((p) => p.trim() === '')) {
    throw new AugurError(
      'BAD_LOCALITY',
      `locality "${value}" is not region[/zone[/subzone]] (for example eu-west-1/eu-west-1a)`,
    );
  }
  return { region: parts[0] ?? '', zone: parts[1] ?? '', subZone: parts[2] ?? '' };
}

function collectLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new AugurError('BAD_LABEL', `label "${value}" is not KEY=VALUE`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function positiveInt(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new AugurError('BAD_FLAG', `${what} must be a whole number >= 1, got "${value}"`);
  return n;
}

function probeSpec(flags: AgentFlags): ProbeSpec {
  if (flags.healthUrl) return { kind: 'http', url: flags.healthUrl };
  if (flags.healthGrpc || flags.healthGrpcService !== undefined) {
    return { kind: 'grpc', address: flags.address, service: flags.healthGrpcService ?? '' };
  }
  if (flags.healthNone) return { kind: 'none' };
  return { kind: 'tcp', address: flags.address };
}

/** `augur agent`: the EPM agent of one endpoint. */
export function registerAgentCommand(program: Command): void {
  const probes = ['healthUrl', 'healthGrpc', 'healthTcp', 'healthNone'];
  // At most one probe flag; commander names the two that clash.
  const exclusive = (flag: string, name: string, description: string) =>
    new Option(flag, description).conflicts(probes.filter((p) => p !== name));
  program
    .command('agent')
    .description('sample this host and the endpoint, and stream the samples to the LPS')
    .requiredOption('--lps <host:port>', 'gRPC address of the LPS (augur serve)')
    .requiredOption('--endpoint-id <id>', 'unique id of the endpoint: 1-128 of A-Z a-z 0-9 . _ : -')
    .requiredOption('--service <name>', 'service the endpoint belongs to')
    .requiredOption('--address <host:port>', 'where clients reach the endpoint')
    .addOption(
      exclusive(
        '--health-url <url>',
        'healthUrl',
        'probe health with an HTTP(S) GET; 2xx/3xx is serving',
      ),
    )
    .addOption(
      exclusive(
        '--health-grpc',
        'healthGrpc',
        'probe health with grpc.health.v1.Health/Check on --address',
      ),
    )
    .option(
      '--health-grpc-service <name>',
      'service name for the gRPC health check (implies --health-grpc)',
    )
    .addOption(
      exclusive(
        '--health-tcp',
        'healthTcp',
        'probe health with a TCP connect to --address (the default)',
      ),
    )
    .addOption(
      exclusive('--health-none', 'healthNone', 'do not probe; response time is reported as 0'),
    )
    .option('--interval <seconds>', 'seconds between samples until the LPS sets another', '1')
    .option(
      '--no-align',
      "sample every interval from the agent's start, not at whole multiples of the interval on the host clock",
    )
    .option('--health-timeout <seconds>', 'seconds before a probe counts as failed', '1')
    .option('--locality <region/zone/subzone>', 'where the endpoint runs')
    .option('--label <key=value>', 'a label for the endpoint (repeatable)', collectLabel, {})
    .option('--buffer <samples>', 'unacknowledged samples kept while the LPS is unreachable', '600')
    .option('--link-mbps <mbps>', 'link speed when the host does not report one, Mbit/s', '1000')
    .option(
      '--load-url <url>',
      'read the load from this URL (JSON {cpuUsage, memoryUsage, networkIo, processCpuUsage?, requestsCompleted?, latencySumSeconds?}) instead of the host',
    )
    .addOption(
      new Option(
        '--process-pid <pid>',
        "the endpoint's process: its tree's own CPU (/proc/<pid>/stat), so the background is measured",
      ).conflicts(['processName', 'cgroup']),
    )
    .addOption(
      new Option(
        '--process-name <comm>',
        'as --process-pid, for the process tree named so in /proc/<pid>/comm (found again if restarted)',
      ).conflicts(['cgroup']),
    )
    .option('--cgroup <dir>', "the endpoint's cgroup v2 directory: its own CPU from cpu.stat")
    .option(
      '--metrics-url <url>',
      "the endpoint's Prometheus metrics, for the requests it completed (with --requests-metric or --latency-metric)",
    )
    .option(
      '--requests-metric <name{labels}>',
      'a counter of completed requests on --metrics-url, e.g. http_requests_total{code!="500"}',
    )
    .option(
      '--latency-metric <name{labels}>',
      'a latency histogram or summary (seconds) on --metrics-url: _count counts requests, _sum sums latency',
    )
    .option('--tls-ca <file>', "CA bundle (PEM) the LPS's certificate is verified against: TLS")
    .option('--tls-cert <file>', "this agent's certificate (PEM), for mutual TLS")
    .option('--tls-key <file>', "this agent's private key (PEM)")
    .option(
      '--tls-server-name <name>',
      "the name the LPS's certificate carries, if not the --lps host",
    )
    .option('--token-file <file>', 'a file holding the bearer token sent to the LPS')
    .option('--insecure', 'allow plaintext to an LPS that is not on loopback')
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .action(async (flags: AgentFlags) => {
      // Loaded here, not at the top, so other subcommands do not pay for the agent and vice versa.
      const [{ Agent }, { createLogger }, { stopOnSignals }] = await Promise.all([
        import('./agent.js'),
        import('../common/logger.js'),
        import('../common/lifecycle.js'),
      ]);
      const logger = createLogger('augur-agent', flags.logLevel);
      const security = {
        ca: flags.tlsCa,
        cert: flags.tlsCert,
        key: flags.tlsKey,
        serverName: flags.tlsServerName,
        tokenFile: flags.tokenFile,
      };
      const [{ checkPlaintext }, { clientUsesTls }, { parseHostPort }] = await Promise.all([
        import('../common/security.js'),
        import('../common/tls.js'),
        import('../common/address.js'),
      ]);
      checkPlaintext({
        what: 'the LPS connection',
        host: parseHostPort(flags.lps, '--lps').host,
        tls: clientUsesTls(security),
        insecure: flags.insecure ?? false,
        logger,
        flag: '--insecure',
      });
      const linkMbps = Number(flags.linkMbps);
      if (!(linkMbps > 0))
        throw new AugurError('BAD_FLAG', `--link-mbps must be > 0, got "${flags.linkMbps}"`);
      const sampler = flags.loadUrl
        ? new (await import('./http-sampler.js')).HttpLoadSampler({
            url: flags.loadUrl,
            timeoutSeconds: parseDurationSeconds(flags.healthTimeout, '--health-timeout'),
          })
        : undefined;
      const cores = Math.max(1, cpus().length);
      let ownCpu: OwnCpuSource | undefined;
      if (flags.processPid !== undefined || flags.processName !== undefined) {
        const { ProcessTreeCpu, findProcessByName } = await import('./own-cpu.js');
        const name = flags.processName;
        const pid = name
          ? await findProcessByName(name)
          : positiveInt(flags.processPid!, '--process-pid');
        ownCpu = await ProcessTreeCpu.start({
          pid,
          cores,
          ...(name ? { find: () => findProcessByName(name) } : {}),
        });
      } else if (flags.cgroup !== undefined) {
        const { CgroupCpu } = await import('./own-cpu.js');
        ownCpu = await CgroupCpu.start({ path: flags.cgroup, cores });
      }
      if ((flags.requestsMetric || flags.latencyMetric) && !flags.metricsUrl)
        throw new AugurError(
          'BAD_FLAG',
          '--requests-metric and --latency-metric need --metrics-url',
        );
      const requests = flags.metricsUrl
        ? new (await import('./request-metrics.js')).PrometheusRequests({
            url: flags.metricsUrl,
            requests: flags.requestsMetric,
            latency: flags.latencyMetric,
            timeoutSeconds: parseDurationSeconds(flags.healthTimeout, '--health-timeout'),
          })
        : undefined;
      const agent = await Agent.start({
        lps: flags.lps,
        endpointId: flags.endpointId,
        service: flags.service,
        address: flags.address,
        locality: flags.locality ? parseLocality(flags.locality) : undefined,
        labels: flags.label,
        intervalSeconds: parseDurationSeconds(flags.interval, '--interval'),
        alignToClock: flags.align,
        probe: probeSpec(flags),
        healthTimeoutSeconds: parseDurationSeconds(flags.healthTimeout, '--health-timeout'),
        bufferSize: positiveInt(flags.buffer, '--buffer'),
        defaultLinkMbps: linkMbps,
        sampler,
        ownCpu,
        requests,
        logger,
        security,
      });
      stopOnSignals(logger, () => agent.stop());
    });
}
