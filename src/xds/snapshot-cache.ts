import type { SharedResponse } from '../common/shared-response.js';
import type { Snapshot, EncodedResource } from './snapshot.js';
import { PUSH_ORDER, isFullState, type ResourceTypeUrl } from './types.js';

/** What a stream asks of the cache for one type. */
export interface WatchRequest {
  typeUrl: ResourceTypeUrl;
  /** Names subscribed to; empty means every resource of the type (wildcard). */
  resourceNames: readonly string[];
  /** The version the client holds (its last ACKed one); '' when it holds none. */
  versionInfo: string;
  /** A version the client NACKed: it is not sent again; the watch waits for the next one. */
  rejectedVersion?: string;
  /**
   * Answer even if the snapshot's version is the one the client holds: the stream's first
   * request of a type, a changed subscription, or endpoints re-sent after their cluster changed.
   */
  force?: boolean;
}

/** The answer to a watch, for one type. `message` is shared by every stream; do not mutate it. */
export interface WatchResponse {
  typeUrl: ResourceTypeUrl;
  version: string;
  /** The encoded DiscoveryResponse, nonce included (see ResourceSet.response). */
  message: SharedResponse;
  nonce: string;
  resources: readonly EncodedResource[];
}

/**
 * Where the protocol server gets its answers (go-control-plane's ConfigWatcher).
 *
 * `createWatch` answers at most once, by calling `respond`:
 * - at once, before it returns, if the group's snapshot can answer now, that is its version of the
 *   type differs from the one the client holds and from the one it rejected (or `force` is set);
 * - otherwise on the first `setSnapshot` of the group that makes it so.
 * A wildcard or a CDS/LDS watch (full state) is answered even when no resource exists, since an
 * empty full-state answer is what deletes the client's resources; a named EDS/RDS watch waits
 * until at least one of its names exists.
 *
 * After it answered a watch is spent. The caller owns the watch and cancels it with the returned
 * function when it no longer wants the answer (a newer request of the same type, the stream's
 * end); cancelling twice or after the answer is harmless. `respond` must not throw.
 */
export interface ConfigWatcher {
  createWatch(
    group: string,
    request: WatchRequest,
    respond: (response: WatchResponse) => void,
  ): () => void;
}

interface Watch {
  request: WatchRequest;
  respond: (response: WatchResponse) => void;
}

/**
 * Immutable snapshots per node group (augur's groups are kinds of client: envoy, grpc), and the
 * open watches on them. Single-threaded: Node runs it on the event loop, so no locks.
 */
export class SnapshotCache implements ConfigWatcher {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watches = new Map<string, Map<ResourceTypeUrl, Set<Watch>>>();

  /**
   * Replaces the group's snapshot and answers the watches it can, type by type in push order
   * (Clusters, Endpoints, Listeners, Routes), so each stream sees make-before-break order.
   */
  setSnapshot(group: string, snapshot: Snapshot): void {
    this.snapshots.set(group, snapshot);
    const byType = this.watches.get(group);
    if (!byType) return;
    for (const typeUrl of PUSH_ORDER) {
      const set = byType.get(typeUrl);
      if (!set) continue;
      for (const w of [...set]) {
        if (!set.has(w)) continue; // cancelled by an answer given earlier in this loop
        const response = answer(snapshot, w.request);
        if (!response) continue;
        set.delete(w);
        w.respond(response);
      }
    }
  }

  getSnapshot(group: string): Snapshot | undefined {
    return this.snapshots.get(group);
  }

  /** Forgets a group's snapshot; its open watches stay open until a new snapshot answers them. */
  clearSnapshot(group: string): void {
    this.snapshots.delete(group);
  }

  createWatch(
    group: string,
    request: WatchRequest,
    respond: (response: WatchResponse) => void,
  ): () => void {
    const snapshot = this.snapshots.get(group);
    const now = snapshot && answer(snapshot, request);
    if (now) {
      respond(now);
      return () => {};
    }
    let byType = this.watches.get(group);
    if (!byType) this.watches.set(group, (byType = new Map()));
    let set = byType.get(request.typeUrl);
    if (!set) byType.set(request.typeUrl, (set = new Set()));
    const watch: Watch = { request, respond };
    set.add(watch);
    const watchSet = set;
    return () => {
      watchSet.delete(watch);
    };
  }

  /** Open watches, for metrics and tests. */
  openWatchCount(): number {
    let n = 0;
    for (const byType of this.watches.values()) for (const set of byType.values()) n += set.size;
    return n;
  }
}

function answer(snapshot: Snapshot, request: WatchRequest): WatchResponse | undefined {
  const set = snapshot.get(request.typeUrl);
  if (!request.force && set.version === request.versionInfo) return undefined;
  if (set.version === request.rejectedVersion) return undefined;
  const { message, nonce, resources } = set.response(request.resourceNames);
  const mayBeEmpty = request.resourceNames.length === 0 || isFullState(request.typeUrl);
  if (resources.length === 0 && !mayBeEmpty) return undefined;
  return { typeUrl: request.typeUrl, version: set.version, message, nonce, resources };
}
