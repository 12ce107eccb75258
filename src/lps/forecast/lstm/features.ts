const DAY_MS = 86_400_000;

/** The angle of `ms`'s time of day on the unit circle, radians (finite `ms`). */
function dayAngle(ms: number): number {
  return (2 * Math.PI * (((ms % DAY_MS) + DAY_MS) % DAY_MS)) / DAY_MS;
}

/** Time of day as a point on the unit circle (so 23:59 is next to 00:00); 0,0 when unknown. */
export function timeOfDay(ms: number): [number, number] {
  if (!Number.isFinite(ms)) return [0, 0];
  const a = dayAngle(ms);
  return [Math.sin(a), Math.cos(a)];
}

/**
 * `timeOfDay` written into `out` at `at` and `at + 1`, with no array: the scorer writes one for
 * every endpoint's sample each tick.
 */
export function writeTimeOfDay(ms: number, out: Float32Array, at: number): void {
  if (!Number.isFinite(ms)) {
    out[at] = 0;
    out[at + 1] = 0;
    return;
  }
  const a = dayAngle(ms);
  out[at] = Math.sin(a);
  out[at + 1] = Math.cos(a);
}
