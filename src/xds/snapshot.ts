import { contentHash, encodeAny, encodeResponseHead, frameResource } from './wire.js';
import { PUSH_ORDER, type ResourceTypeUrl } from './types.js';

/**
 * One resource, marshalled once: its Any framed as an entry of DiscoveryResponse.resources.
 * Every stream that receives the resource gets these same bytes.
 */
export interface EncodedResource {
  readonly name: string;
  readonly typeUrl: ResourceTypeUrl;
  readonly framed: Uint8Array;
  /** Hash of the encoded resource; equal hashes mean equal content. */
  readonly hash: string;
}

/** Wraps an encoded message of `typeUrl` (its own bytes, not yet an Any). */
export function encodedResource(
  typeUrl: ResourceTypeUrl,
  name: string,
  message: Uint8Array,
): EncodedResource {
  const framed = frameResource(encodeAny(typeUrl, message));
  return { name, typeUrl, framed, hash: contentHash(framed) };
}

/** Response bodies kept per resource set; named subscriptions of many clients are usually equal. */
const MAX_MEMOISED_BODIES = 64;

/** The resources of one type in a snapshot, with the version that names their content. */
export class ResourceSet {
  readonly typeUrl: ResourceTypeUrl;
  /**
   * A hash of the names and contents, so a restarted augur gives the same version to the same
   * content and a client reconnecting with the version it holds is not sent it again.
   */
  readonly version: string;
  readonly resources: ReadonlyMap<string, EncodedResource>;
  private readonly bodies = new Map<string, Uint8Array>();

  constructor(typeUrl: ResourceTypeUrl, resources: Iterable<EncodedResource>) {
    this.typeUrl = typeUrl;
    const sorted = [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.resources = new Map(sorted.map((r) => [r.name, r]));
    this.version = contentHash(typeUrl, ...sorted.flatMap((r) => [r.name, '\0', r.hash, '\0']));
  }

  /** The resources a subscription gets: all of them for a wildcard (no names), else those named that exist. */
  select(names: readonly string[]): EncodedResource[] {
    if (names.length === 0) return [...this.resources.values()];
    const out: EncodedResource[] = [];
    for (const n of new Set(names)) {
      const r = this.resources.get(n);
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * The DiscoveryResponse without its nonce, for a subscription: version, type URL and the
   * selected resources, concatenated once and shared by every stream with the same subscription.
   */
  body(names: readonly string[]): { body: Uint8Array; resources: EncodedResource[] } {
    const key = names.length === 0 ? '*' : [...new Set(names)].sort().join('\0');
    const selected = this.select(names);
    let body = this.bodies.get(key);
    if (!body) {
      body = Buffer.concat([
        encodeResponseHead(this.version, this.typeUrl),
        ...selected.map((r) => r.framed),
      ]);
      if (this.bodies.size >= MAX_MEMOISED_BODIES) this.bodies.clear();
      this.bodies.set(key, body);
    }
    return { body, resources: selected };
  }
}

/**
 * An immutable, versioned set of resources for one node group, one ResourceSet per type
 * (a type the snapshot does not mention is an empty set).
 */
export class Snapshot {
  private readonly sets = new Map<ResourceTypeUrl, ResourceSet>();

  constructor(resources: Iterable<EncodedResource>) {
    const byType = new Map<ResourceTypeUrl, EncodedResource[]>(PUSH_ORDER.map((t) => [t, []]));
    for (const r of resources) byType.get(r.typeUrl)!.push(r);
    for (const [t, rs] of byType) this.sets.set(t, new ResourceSet(t, rs));
  }

  get(typeUrl: ResourceTypeUrl): ResourceSet {
    return this.sets.get(typeUrl)!;
  }

  version(typeUrl: ResourceTypeUrl): string {
    return this.get(typeUrl).version;
  }
}
