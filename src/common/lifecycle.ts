import type { Logger } from './logger.js';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0 (1 if stopping failed).
 *
 * One Ctrl-C often arrives more than once: the terminal sends it to the whole foreground
 * group, and the wrappers in that group (`npm start`, `tsx`) pass it on to their child
 * again. A repeat within `repeatGraceMs` of the first is that same Ctrl-C and is ignored,
 * so a clean stop (which saves the learned state) is not cut short; a signal after that
 * is the user asking again, and exits at once.
 */
export function stopOnSignals(
  logger: Logger,
  stop: () => Promise<void>,
  { repeatGraceMs = 2000 }: { repeatGraceMs?: number } = {},
): void {
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt !== undefined) {
      if (performance.now() - firstAt < repeatGraceMs) return;
      logger.warn({ signal }, 'signalled again while stopping: exiting at once');
      exitAfterFlush(logger, 1);
      return;
    }
    firstAt = performance.now();
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
