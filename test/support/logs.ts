import { Writable } from 'node:stream';
import { pino, type Level, type Logger } from 'pino';

/** A pino logger at `level` whose lines (one JSON object each) are kept for assertions. */
export function captureLogger(level: Level = 'info'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
