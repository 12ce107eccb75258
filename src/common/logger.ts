import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout, one logger per process; parts take a child with their name.
 * Writes are synchronous: augur logs little (no line per request or sample), and
 * an asynchronous buffer lost the last lines ("stopped") when a busy reader left
 * the pipe full at exit.
 */
export function createLogger(name: string, level: LevelWithSilent = 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 1, sync: true }));
}

/** A logger that writes nothing, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
