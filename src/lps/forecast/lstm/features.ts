const DAY_MS = 86_400_000;

/** Time of day as a point on the unit circle (so 23:59 is next to 00:00); 0,0 when unknown. */
export function timeOfDay(ms: number): [number, number] {
  if (!Number.isFinite(ms)) return [0, 0];
  const a = (2 * Math.PI * (((ms % DAY_MS) + DAY_MS) % DAY_MS)) / DAY_MS;
  return [Math.sin(a), Math.cos(a)];
}
