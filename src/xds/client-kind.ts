/** The two kinds of xDS client augur builds resources for; each is a snapshot group. */
export type ClientKind = 'envoy' | 'grpc';
export const CLIENT_KINDS: readonly ClientKind[] = ['envoy', 'grpc'];

/** The parts of an envoy.config.core.v3.Node the rule reads. */
export interface NodeIdentity {
  id?: string;
  userAgentName?: string;
  /** Node metadata flattened to its string values. */
  metadata?: Readonly<Record<string, string>>;
}

export interface ClientKindRule {
  /** Node metadata key whose value `envoy` or `grpc` decides, whatever the user agent says. */
  metadataKey: string;
  /** `user_agent_name`s (compared case-insensitively) that mean Envoy. */
  envoyUserAgents: readonly string[];
  /** The kind of any other client. */
  defaultKind: ClientKind;
}

/**
 * Which resources a node gets. In order:
 * 1. node metadata `augur.client: envoy|grpc` (the metadata key is configurable);
 * 2. `user_agent_name` in `envoyUserAgents` (Envoy sends "envoy") → envoy;
 * 3. otherwise the default kind, grpc: every gRPC library names itself differently
 *    ("gRPC Node Pure JS", "gRPC Go", "grpc-java", "gRPC C-core"), Envoy always says "envoy".
 */
export function clientKindOf(node: NodeIdentity | undefined, rule: ClientKindRule): ClientKind {
  const declared = node?.metadata?.[rule.metadataKey]?.trim().toLowerCase();
  if (declared === 'envoy' || declared === 'grpc') return declared;
  const agent = node?.userAgentName?.trim().toLowerCase() ?? '';
  if (rule.envoyUserAgents.some((a) => a.toLowerCase() === agent)) return 'envoy';
  return rule.defaultKind;
}
