import { Option, type Command } from 'commander';
import { parseHostPort } from '../common/address.js';
import { parseDurationSeconds } from '../common/duration.js';
import { AugurError } from '../common/errors.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

interface BackendFlags {
  listen: string;
  id: string;
  capacity: string;
  background: string;
  ramp?: string;
  maxQueue: string;
  reportEvery: string;
  logLevel: LogLevel;
}

interface LoadgenFlags {
  target: string;
  rate: string;
  duration?: string;
  header: Record<string, string>;
  reportEvery: string;
  maxInFlight: string;
  timeout: string;
  logLevel: LogLevel;
}

function positiveNumber(value: string, what: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new AugurError('BAD_FLAG', `${what} must be a number > 0, got "${value}"`);
  return n;
}

function positiveSeconds(value: string, what: string): number {
  const s = parseDurationSeconds(value, what);
  if (s <= 0) throw new AugurError('BAD_FLAG', `${what} must be > 0 seconds, got "${value}"`);
  return s;
}

function collectHeader(value: string, previous: Record<string, string>): Record<string, string> {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new AugurError('BAD_HEADER', `header "${value}" is not NAME:VALUE`);
  return {
    ...previous,
    [value.slice(0, colon).trim().toLowerCase()]: value.slice(colon + 1).trim(),
  };
}

const logLevelOption = () =>
  new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info');

/**
 * `augur demo-backend` and `augur loadgen`: the pieces of the demo that run as
 * their own processes (one per container in docker-compose.yml).
 */
export function registerDemoToolsCommand(program: Command): void {
  program
    .command('demo-backend')
    .description(
      'run a demo HTTP backend whose capacity is shared with a (ramping) background load; /healthz, /load',
    )
    .requiredOption('--id <id>', 'backend id, sent back in the x-augur-backend header')
    .option('--listen <host:port>', 'HTTP address to serve on', '127.0.0.1:8080')
    .option('--capacity <rps>', 'requests per second it serves with no background load', '100')
    .option(
      '--background <fraction>',
      'background load before any ramp, fraction of capacity',
      '0.1',
    )
    .option('--ramp <spec>', 'ramp the background: at=30s,over=20s,to=0.85[,hold=60s][,every=180s]')
    .option('--max-queue <seconds>', 'requests that would wait longer get 503', '2')
    .option('--report-every <seconds>', 'seconds between log lines of what it served', '5')
    .addOption(logLevelOption())
    .action(async (flags: BackendFlags) => {
      const [{ DemoBackend }, profile, { createLogger }, { stopOnSignals }] = await Promise.all([
        import('./backend.js'),
        import('./profile.js'),
        import('../common/logger.js'),
        import('../common/lifecycle.js'),
      ]);
      const listen = parseHostPort(flags.listen, '--listen');
      const base = profile.parseFraction(flags.background, '--background');
      const ramp = flags.ramp === undefined ? undefined : profile.parseRamp(flags.ramp);
      const background = ramp ? profile.rampProfile(base, ramp) : profile.constantProfile(base);
      const reportEvery = positiveSeconds(flags.reportEvery, '--report-every');
      const logger = createLogger('augur-demo-backend', flags.logLevel);
      const backend = new DemoBackend({
        id: flags.id,
        capacityRps: positiveNumber(flags.capacity, '--capacity'),
        background,
        maxQueueSeconds: positiveSeconds(flags.maxQueue, '--max-queue'),
        host: listen.host,
      });
      const address = await backend.start(listen.port);
      logger.info(
        { id: flags.id, listen: address, ramp, background: base },
        'demo backend listening',
      );
      let last = backend.stats();
      const timer = setInterval(() => {
        const now = backend.stats();
        logger.info(
          {
            id: flags.id,
            served: now.served - last.served,
            refused: now.refused - last.refused,
            background: Math.round(backend.backgroundNow() * 1000) / 1000,
            queueMs: Math.round(backend.queueDelay() * 1000),
          },
          'demo backend report',
        );
        last = now;
      }, reportEvery * 1000);
      stopOnSignals(logger, async () => {
        clearInterval(timer);
        await backend.stop();
      });
    });

  program
    .command('loadgen')
    .description('send HTTP requests at a steady rate and log latency percentiles as JSON')
    .requiredOption('--target <url>', 'http:// URL to send GET requests to')
    .option('--rate <rps>', 'mean requests started per second (Poisson arrivals, open loop)', '100')
    .option('--duration <seconds>', 'stop after this long (default: until SIGTERM)')
    .option(
      '--header <name:value>',
      'header sent with every request (repeatable)',
      collectHeader,
      {},
    )
    .option('--report-every <seconds>', 'seconds between reports', '5')
    .option(
      '--max-in-flight <n>',
      'requests waiting for an answer before new ones are dropped',
      '512',
    )
    .option('--timeout <seconds>', 'seconds before a request counts as an error', '5')
    .addOption(logLevelOption())
    .action(async (flags: LoadgenFlags) => {
      const [{ LoadGenerator }, { createLogger }, { stopOnSignals }] = await Promise.all([
        import('./loadgen.js'),
        import('../common/logger.js'),
        import('../common/lifecycle.js'),
      ]);
      const target = parseTarget(flags.target);
      const rate = positiveNumber(flags.rate, '--rate');
      const maxInFlight = Number(flags.maxInFlight);
      if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
        throw new AugurError(
          'BAD_FLAG',
          `--max-in-flight must be a whole number >= 1, got "${flags.maxInFlight}"`,
        );
      }
      const duration =
        flags.duration === undefined ? undefined : positiveSeconds(flags.duration, '--duration');
      const logger = createLogger('augur-loadgen', flags.logLevel);
      const gen = new LoadGenerator({
        target,
        rate,
        headers: flags.header,
        maxInFlight,
        timeoutSeconds: positiveSeconds(flags.timeout, '--timeout'),
        reportEverySeconds: positiveSeconds(flags.reportEvery, '--report-every'),
        onReport: (report) => logger.info(report, 'load report'),
      });
      logger.info({ target, rate, duration, headers: flags.header }, 'load generator started');
      gen.start();
      const finish = async () => logger.info(await gen.stop(), 'load totals');
      if (duration !== undefined) {
        setTimeout(() => void finish().then(() => process.exit(0)), duration * 1000);
      }
      stopOnSignals(logger, finish);
    });
}

function parseTarget(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AugurError('BAD_TARGET', `--target "${value}" is not a URL`);
  }
  if (url.protocol !== 'http:')
    throw new AugurError('BAD_TARGET', `--target "${value}" must be an http:// URL`);
  return url.toString();
}
