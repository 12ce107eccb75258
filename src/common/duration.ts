import type { Duration } from '../gen/google/protobuf/duration.js';
import { AugurError } from './errors.js';

export function secondsToDuration(seconds: number): Duration {
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}

export function durationToSeconds(d: Duration | undefined): number {
  if (!d) return 0;
  return Number(d.seconds) + d.nanos / 1e9;
}

/**
 * Parses a duration given by a user: a plain number of seconds ("5", "0.5") or a
 * number with a unit ("250ms", "5s", "2m", "1h").
 */
export function parseDurationSeconds(value: string | number, what = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new AugurError(
        'BAD_DURATION',
        `${what} must be a finite number of seconds >= 0, got ${value}`,
      );
    }
    return value;
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) {
    throw new AugurError(
      'BAD_DURATION',
      `${what} "${value}" is not a duration: use seconds ("5", "0.5") or a unit ("250ms", "5s", "2m")`,
    );
  }
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1e-3 : unit === 's' ? 1 : unit === 'm' ? 60 : 3600;
  return n * factor;
}
