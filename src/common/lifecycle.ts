import type { Logger } from './logger.js';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0 (1 if stopping failed).
 * A second signal exits at once.
 */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => {
        logger.info('stopped');
        exitAfterFlush(logger, 0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        exitAfterFlush(logger, 1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Exits once the log lines written so far are out (a pipe may still hold them), or after 1 s. */
function exitAfterFlush(logger: Logger, code: number): void {
  const timer = setTimeout(() => process.exit(code), 1000);
  logger.flush(() => {
    clearTimeout(timer);
    process.exit(code);
  });
}

/**
 * A part plugged into a server process (`augur serve`, `augur rrm`): whoever attached it stops
 * it, in reverse order of attachment.
 */
export interface AttachedPart {
  stop(): Promise<void>;
}
