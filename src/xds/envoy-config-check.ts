import { fromJson, type DescMessage, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { envoyRegistry } from './envoy-registry.js';

/** A problem found in an Envoy configuration; `path` locates it, e.g. `static_resources.clusters[0].lb_policy`. */
export interface EnvoyConfigProblem {
  path: string;
  message: string;
}

export interface EnvoyCheckOptions {
  /**
   * Serialized FileDescriptorSets for `@type`s Envoy's API does not define (a user's own
   * extensions; `buf build -o`, or `protoc --include_imports --descriptor_set_out`).
   */
  descriptorSets?: Uint8Array[];
  /** Reuse a registry across many checks (building one takes about half a second). */
  protos?: FileRegistry;
}

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

type Json = JsonValue;
const isObject = (v: Json | undefined): v is { [k: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const join2 = (path: string, key: string): string => (path ? `${path}.${key}` : key);

/** Messages whose proto3 JSON is not an object of their fields. */
const OPAQUE_JSON = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

/** What @bufbuild/protobuf says is wrong with `json` as a `desc`, or undefined if nothing. */
function problemOf(desc: DescMessage, json: Json, registry: FileRegistry): string | undefined {
  try {
    fromJson(desc, json, { registry });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Where in the document the library's objections are. The whole check is @bufbuild/protobuf's
 * strict proto3 JSON reader; this only walks the document with the descriptors to give each
 * problem its path: every field is read on its own, so one run finds every problem, and a
 * problem no single field has (two members of a oneof, a field given under both its names)
 * belongs to the object that holds them.
 */
function locate(
  desc: DescMessage,
  json: Json,
  registry: FileRegistry,
  path: string,
  out: EnvoyConfigProblem[],
): void {
  const whole = problemOf(desc, json, registry);
  if (!whole) return;
  if (desc.typeName === 'google.protobuf.Any' && isObject(json)) {
    const url = json['@type'];
    const name = typeof url === 'string' ? url.slice(url.lastIndexOf('/') + 1) : '';
    const inner = name ? registry.getMessage(name) : undefined;
    if (!inner) {
      out.push({
        path: join2(path, '@type'),
        message:
          typeof url === 'string'
            ? `unknown type "${name}": no proto in augur's Envoy API or the given descriptor sets defines it`
            : 'an Any needs "@type": "type.googleapis.com/<full message name>"',
      });
      return;
    }
    const rest = Object.fromEntries(Object.entries(json).filter(([k]) => k !== '@type'));
    const body = OPAQUE_JSON.has(inner.typeName) ? (rest.value ?? null) : rest;
    const before = out.length;
    locate(inner, body, registry, path, out);
    if (out.length === before) out.push({ path, message: whole });
    return;
  }
  if (!isObject(json) || OPAQUE_JSON.has(desc.typeName)) {
    out.push({ path, message: whole });
    return;
  }
  const before = out.length;
  for (const [key, value] of Object.entries(json)) {
    const here = join2(path, key);
    const field = desc.fields.find((f) => f.name === key || f.jsonName === key);
    if (!field) {
      out.push({
        path: here,
        message: `unknown field "${key}" in ${desc.typeName}${suggest(key, desc)}`,
      });
      continue;
    }
    const alone = problemOf(desc, { [key]: value }, registry);
    if (!alone) continue;
    const inner = field.message;
    if (field.fieldKind === 'message' && inner) {
      locate(inner, value, registry, here, out);
    } else if (field.fieldKind === 'list' && inner && Array.isArray(value)) {
      value.forEach((item, i) => locate(inner, item, registry, `${here}[${i}]`, out));
    } else if (field.fieldKind === 'map' && inner && isObject(value)) {
      for (const [k, v] of Object.entries(value))
        locate(inner, v, registry, `${here}["${k}"]`, out);
    } else {
      const values = field.enum?.values.map((v) => v.name);
      out.push({ path: here, message: values ? `${alone} (one of ${values.join(', ')})` : alone });
    }
  }
  if (out.length === before) out.push({ path, message: whole });
}

/** "did you mean" for a near miss (one or two edits away, or the same letters in another case). */
function suggest(key: string, desc: DescMessage): string {
  const near = desc.fields
    .map((f) => f.name)
    .find((n) => n.toLowerCase() === key.toLowerCase() || editDistance(n, key) <= 2);
  return near ? ` (did you mean "${near}"?)` : '';
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next.push(
        Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)),
      );
    }
    row = next;
  }
  return row[b.length]!;
}

/**
 * Checks an Envoy YAML document strictly against Envoy's protos, the way Envoy reads it (YAML as
 * proto3 JSON), with @bufbuild/protobuf's JSON reader: an unknown field, a wrong enum name, two
 * members of a oneof, an `@type` no proto defines, a value of the wrong type — each is a problem
 * with its path. Typed configs (`Any`) are resolved through their `@type` and checked inside. Not
 * checked: protoc-gen-validate rules (required fields, ranges) and Envoy's runtime
 * cross-references (a route naming a missing cluster). Returns no problems for a valid document.
 */
export function checkEnvoyYaml(
  text: string,
  rootType = BOOTSTRAP_TYPE,
  options: EnvoyCheckOptions = {},
): EnvoyConfigProblem[] {
  const registry = options.protos ?? envoyRegistry(options.descriptorSets);
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length !== 1) {
    return [{ path: '', message: `expected one YAML document, found ${list.length}` }];
  }
  const doc = list[0]!;
  if (doc.errors.length > 0) {
    return doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message}` }));
  }
  const desc = registry.getMessage(rootType);
  if (!desc) return [{ path: '', message: `no proto defines the root type ${rootType}` }];
  const problems: EnvoyConfigProblem[] = [];
  locate(desc, (doc.toJS({ maxAliasCount: 100 }) ?? {}) as Json, registry, '', problems);
  return problems;
}

/** Checks every `*.yaml`/`*.yml` in a folder as a bootstrap; file name → problems (empty when valid). */
export function checkEnvoyFolder(
  dir: string,
  options: EnvoyCheckOptions = {},
): Map<string, EnvoyConfigProblem[]> {
  const protos = options.protos ?? envoyRegistry(options.descriptorSets);
  const out = new Map<string, EnvoyConfigProblem[]>();
  for (const f of readdirSync(dir).sort()) {
    if (!/\.ya?ml$/.test(f)) continue;
    out.set(f, checkEnvoyYaml(readFileSync(join(dir, f), 'utf8'), BOOTSTRAP_TYPE, { protos }));
  }
  return out;
}
