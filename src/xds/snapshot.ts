import { SharedResponse } from '../common/shared-response.js';
import { contentHash, encodeAny, encodeNonce, encodeResponseHead, frameResource } from './wire.js';
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

/** Responses kept per resource set; named subscriptions of many clients are usually equal. */
const MAX_MEMOISED_RESPONSES = 64;
let nonceCounter = 0;

/** The resources of one type in a snapshot, with the version that names their content. */
export class ResourceSet {
  readonly typeUrl: ResourceTypeUrl;
  /**
   * A hash of the names and contents, so a restarted augur gives the same version to the same
   * content and a client reconnecting with the version it holds is not sent it again.
   */
  readonly version: string;
  readonly resources: ReadonlyMap<string, EncodedResource>;
  private readonly responses = new Map<string, { message: SharedResponse; nonce: string }>();

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
   * The whole DiscoveryResponse for a subscription (version, type URL, the selected resources and
   * a nonce), marshalled once and written as is to every stream with the same subscription.
   *
   * The nonce names these bytes rather than a (stream, response) pair: it comes from a
   * process-wide counter, so two different responses never share a nonce, on any stream. A stream
   * may be sent the same bytes twice (a forced re-send); both copies then carry one nonce, which is
   * harmless since an ACK or NACK of either is about the same content. Sharing the nonce is what
   * lets a push to many streams cost no per-stream allocation here, and the message is kept with
   * its gRPC framing so grpc-js need not frame a copy per stream either (common/shared-response).
   */
  response(names: readonly string[]): {
    message: SharedResponse;
    nonce: string;
    resources: EncodedResource[];
  } {
    const key = names.length === 0 ? '*' : [...new Set(names)].sort().join('\0');
    const selected = this.select(names);
    let memo = this.responses.get(key);
    if (!memo) {
      const nonce = (++nonceCounter).toString(36);
      const message = SharedResponse.concat([
        encodeResponseHead(this.version, this.typeUrl),
        ...selected.map((r) => r.framed),
        encodeNonce(nonce),
      ]);
      memo = { message, nonce };
      if (this.responses.size >= MAX_MEMOISED_RESPONSES) this.responses.clear();
      this.responses.set(key, memo);
    }
    return { ...memo, resources: selected };
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
