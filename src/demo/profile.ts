import { parseDurationSeconds } from '../common/duration.js';
import { AugurError } from '../common/errors.js';

/**
 * A background load that ramps: `base` until `at`, then linearly to `to` over
 * `over` seconds, held for `hold` seconds (forever when absent), then back to
 * `base` over `over` seconds. With `every`, that cycle starts again every
 * `every` seconds from `at`, so a long-running demo keeps showing swaps.
 */
export interface RampSpec {
  at: number;
  over: number;
  to: number;
  hold?: number;
  every?: number;
}

/** Fraction of a backend's capacity taken by load that is not ours at `t` seconds after start. */
export type BackgroundProfile = (t: number) => number;

export function constantProfile(base: number): BackgroundProfile {
  return () => base;
}

export function rampProfile(base: number, ramp: RampSpec): BackgroundProfile {
  const { at, over, to, hold, every } = ramp;
  const lerp = (f: number) => base + (to - base) * Math.min(1, Math.max(0, f));
  return (t) => {
    if (t < at) return base;
    const s = every === undefined ? t - at : (t - at) % every;
    if (s < over) return lerp(over === 0 ? 1 : s / over);
    if (hold === undefined || s < over + hold) return to;
    const down = s - over - hold;
    return down < over ? lerp(over === 0 ? 0 : 1 - down / over) : base;
  };
}

const KEYS = ['at', 'over', 'to', 'hold', 'every'] as const;

/**
 * Parses `at=30s,over=20s,to=0.85[,hold=60s][,every=180s]` (durations take the
 * usual units; `to` is a fraction in [0, 0.99]).
 */
export function parseRamp(value: string): RampSpec {
  const fields = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    if (eq <= 0 || !(KEYS as readonly string[]).includes(key)) {
      throw new AugurError(
        'BAD_RAMP',
        `ramp "${value}": "${part}" is not one of ${KEYS.map((k) => `${k}=...`).join(', ')}`,
      );
    }
    fields.set(key, part.slice(eq + 1).trim());
  }
  for (const key of ['at', 'over', 'to']) {
    if (!fields.has(key)) {
      throw new AugurError(
        'BAD_RAMP',
        `ramp "${value}" needs ${key}= (for example at=30s,over=20s,to=0.85)`,
      );
    }
  }
  const seconds = (key: string) => {
    const raw = fields.get(key);
    return raw === undefined ? undefined : parseDurationSeconds(raw, `ramp ${key}`);
  };
  const spec: RampSpec = {
    at: seconds('at') ?? 0,
    over: seconds('over') ?? 0,
    to: parseFraction(fields.get('to') ?? '', 'ramp to'),
    hold: seconds('hold'),
    every: seconds('every'),
  };
  if (spec.every !== undefined) {
    if (spec.hold === undefined) {
      throw new AugurError(
        'BAD_RAMP',
        `ramp "${value}": every= needs hold= (how long the peak lasts)`,
      );
    }
    if (spec.every < 2 * spec.over + spec.hold || spec.every <= 0) {
      throw new AugurError(
        'BAD_RAMP',
        `ramp "${value}": every= must be at least 2 × over + hold = ${2 * spec.over + spec.hold} s`,
      );
    }
  }
  return spec;
}

/** A fraction of capacity in [0, 0.99]: a backend at 1 would serve nothing. */
export function parseFraction(value: string, what: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 0.99) {
    throw new AugurError('BAD_FRACTION', `${what} must be a fraction in [0, 0.99], got "${value}"`);
  }
  return n;
}
