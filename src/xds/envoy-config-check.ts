import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { EnvoyProtos } from './proto-registry.js';
import { fromProtoJson, type ProtoJsonProblem } from './proto-json.js';

/** A problem found in an Envoy configuration; `path` locates it, e.g. `static_resources.clusters[0].lb_policy`. */
export type EnvoyConfigProblem = ProtoJsonProblem;

export interface EnvoyCheckOptions {
  /** More include folders searched for `@type`s (after augur's proto/envoy-extra and Envoy's own). */
  extraProtoDirs?: string[];
  /** Reuse a registry across many checks (it caches loaded packages). */
  protos?: EnvoyProtos;
}

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/**
 * Checks an Envoy YAML document strictly against Envoy's protos, the way Envoy reads it (YAML as
 * proto3 JSON): an unknown field, a wrong enum name, two members of a oneof, an `@type` no proto
 * defines, a value of the wrong type — each is a problem with its path. Typed configs (`Any`) are
 * resolved through their `@type` and checked inside. Not checked: protoc-gen-validate rules
 * (required fields, ranges) and Envoy's runtime cross-references (a route naming a missing cluster).
 * Returns no problems for a valid document.
 */
export function checkEnvoyYaml(
  text: string,
  rootType = BOOTSTRAP_TYPE,
  options: EnvoyCheckOptions = {},
): EnvoyConfigProblem[] {
  const protos = options.protos ?? new EnvoyProtos(options.extraProtoDirs ?? []);
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: EnvoyConfigProblem[] = [];
  if (list.length !== 1) {
    return [{ path: '', message: `expected one YAML document, found ${list.length}` }];
  }
  const doc = list[0]!;
  for (const e of doc.errors) problems.push({ path: '', message: `YAML: ${e.message}` });
  if (problems.length > 0) return problems;
  const type = protos.findType(rootType);
  if (!type) return [{ path: '', message: `no proto defines the root type ${rootType}` }];
  return fromProtoJson(type, doc.toJS({ maxAliasCount: 100 }), protos).problems;
}

/** Checks every `*.yaml`/`*.yml` in a folder as a bootstrap; file name → problems (empty when valid). */
export function checkEnvoyFolder(
  dir: string,
  options: EnvoyCheckOptions = {},
): Map<string, EnvoyConfigProblem[]> {
  const protos = options.protos ?? new EnvoyProtos(options.extraProtoDirs ?? []);
  const out = new Map<string, EnvoyConfigProblem[]>();
  for (const f of readdirSync(dir).sort()) {
    if (!/\.ya?ml$/.test(f)) continue;
    out.set(f, checkEnvoyYaml(readFileSync(join(dir, f), 'utf8'), BOOTSTRAP_TYPE, { protos }));
  }
  return out;
}
