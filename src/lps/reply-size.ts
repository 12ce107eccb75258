/**
 * Keeps one reply (a service's prioritized list, and so its EDS resource; a ListEndpoints
 * answer) under `lps.maxReplyBytes`: gRPC refuses a message past 4 MiB with RESOURCE_EXHAUSTED,
 * which would take the whole service away from every reader. Past the limit the largest
 * endpoints are left out, one at a time, until the rest fits: the service keeps every endpoint
 * of ordinary size.
 */

/** Bytes a length-delimited protobuf field of `len` bytes takes (field number below 16). */
export function fieldBytes(len: number): number {
  let varint = 1;
  for (let n = len; n > 0x7f; n = Math.floor(n / 128)) varint++;
  return 1 + varint + len;
}

export interface Fitted<T> {
  /** What fits, in the order given. */
  kept: T[];
  /** What was left out, largest first. */
  dropped: T[];
}

/**
 * Fits `items` (each `sizeOf` bytes on the wire as a repeated message field, its own tag and
 * length not counted) into `maxBytes` with `fixedBytes` for the rest of the reply, leaving out
 * the largest items first. Returns the input array itself when everything fits.
 */
export function fitReply<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  fixedBytes: number,
  maxBytes: number,
): Fitted<T> {
  const sizes = items.map((item) => fieldBytes(sizeOf(item)));
  let total = fixedBytes;
  for (const s of sizes) total += s;
  if (total <= maxBytes) return { kept: items as T[], dropped: [] };
  // Largest first; at equal sizes the later item goes first (the list is best first).
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]! || b - a);
  const out = new Set<number>();
  for (const i of order) {
    if (total <= maxBytes) break;
    out.add(i);
    total -= sizes[i]!;
  }
  return {
    kept: items.filter((_, i) => !out.has(i)),
    dropped: order.filter((i) => out.has(i)).map((i) => items[i]!),
  };
}
