import protobuf from 'protobufjs';

/*
 * Envoy's configuration language is the proto3 JSON mapping (YAML is read as JSON): Durations are
 * "1.5s", wrappers are bare scalars, Any is {"@type": ..., fields...}, Struct is any object. This
 * walks such a document against protobufjs reflection, strictly (an unknown field, a wrong enum
 * name, two members of a oneof, an unknown @type, a wrong scalar type: each an error with its
 * path), and returns what protobufjs's fromObject takes, so the same walk both checks Envoy YAML
 * and lets the xDS resource builders be written in Envoy's own notation.
 */

/** Finds message types by full name (no leading dot). */
export interface TypeResolver {
  findType(fullName: string): protobuf.Type | undefined;
}

/** A TypeResolver over an already loaded root. */
export function rootResolver(root: protobuf.Root): TypeResolver {
  return {
    findType(name) {
      try {
        const t = root.lookup(name);
        return t instanceof protobuf.Type ? t : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

export interface ProtoJsonProblem {
  /** Where, e.g. `static_resources.clusters[0].lb_policy`. */
  path: string;
  message: string;
}

export interface ProtoJsonResult {
  problems: ProtoJsonProblem[];
  /** The message as protobufjs's `fromObject` takes it (proto field names, Any already encoded). */
  value: Record<string, unknown>;
}

type Json = unknown;

const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};

const VALUE_FORM_TYPES = new Set([
  '.google.protobuf.Duration',
  '.google.protobuf.Timestamp',
  '.google.protobuf.Struct',
  '.google.protobuf.Value',
  '.google.protobuf.ListValue',
  '.google.protobuf.FieldMask',
]);

const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

/** Fields of a type by proto name and by JSON (lowerCamel) name. */
const fieldIndex = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();
function fieldsOf(type: protobuf.Type): Map<string, protobuf.Field> {
  let index = fieldIndex.get(type);
  if (!index) {
    index = new Map();
    for (const f of type.fieldsArray) {
      index.set(f.name, f);
      index.set(camel(f.name), f);
    }
    fieldIndex.set(type, index);
  }
  return index;
}

/** Converts one proto3-JSON document into a message of `type`, collecting every problem. */
export function fromProtoJson(
  type: protobuf.Type,
  json: Json,
  resolver: TypeResolver,
  path = '',
): ProtoJsonResult {
  const problems: ProtoJsonProblem[] = [];
  const value = new Walker(resolver, problems).message(type, json, path);
  return { problems, value: isObject(value) ? value : {} };
}

/** Like fromProtoJson, then marshals; throws on the first problems (for builders, whose input is ours). */
export function encodeProtoJson(
  type: protobuf.Type,
  json: Json,
  resolver: TypeResolver,
): Uint8Array {
  const { problems, value } = fromProtoJson(type, json, resolver);
  if (problems.length > 0) {
    const list = problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; ');
    throw new Error(`invalid ${type.fullName.slice(1)}: ${list}`);
  }
  return type.encode(type.fromObject(value)).finish();
}

class Walker {
  constructor(
    private readonly resolver: TypeResolver,
    private readonly problems: ProtoJsonProblem[],
  ) {}

  private problem(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  message(type: protobuf.Type, json: Json, path: string): unknown {
    const wellKnown = this.wellKnown(type, json, path);
    if (wellKnown.handled) return wellKnown.value;
    if (!isObject(json))
      return this.problem(
        path,
        `expected an object (${type.fullName.slice(1)}), got ${describe(json)}`,
      );
    const fields = fieldsOf(type);
    const out: Record<string, unknown> = {};
    const oneofMembers = new Map<string, string>();
    for (const [key, raw] of Object.entries(json)) {
      const here = join(path, key);
      const field = fields.get(key);
      if (!field) {
        this.problem(
          here,
          `unknown field "${key}" in ${type.fullName.slice(1)}${suggest(key, type)}`,
        );
        continue;
      }
      if (field.name in out) {
        this.problem(
          here,
          `field "${field.name}" is given twice (as "${field.name}" and "${camel(field.name)}")`,
        );
        continue;
      }
      if (raw === null) continue; // proto3 JSON: null means unset
      const oneof = field.partOf;
      if (oneof && !isSyntheticOneof(oneof)) {
        const other = oneofMembers.get(oneof.name);
        if (other) {
          this.problem(
            here,
            `"${field.name}" and "${other}" are both members of oneof "${oneof.name}": set one`,
          );
          continue;
        }
        oneofMembers.set(oneof.name, field.name);
      }
      const converted = this.field(field, raw, here);
      if (converted !== undefined) out[field.name] = converted;
    }
    return out;
  }

  private field(field: protobuf.Field, json: Json, path: string): unknown {
    field.resolve();
    if (field instanceof protobuf.MapField) {
      if (!isObject(json))
        return this.problem(path, `expected a map (object), got ${describe(json)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(json)) {
        const c = this.single(field, v, `${path}["${k}"]`);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(json)) return this.problem(path, `expected a list, got ${describe(json)}`);
      return json.map((v, i) => this.single(field, v, `${path}[${i}]`));
    }
    return this.single(field, json, path);
  }

  private single(field: protobuf.Field, json: Json, path: string): unknown {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) return this.message(resolved, json, path);
    if (resolved instanceof protobuf.Enum) return this.enumValue(resolved, json, path);
    return this.scalar(field.type, json, path);
  }

  private enumValue(e: protobuf.Enum, json: Json, path: string): unknown {
    if (e.fullName === '.google.protobuf.NullValue') return 0;
    if (typeof json === 'string') {
      if (json in e.values) return json;
      return this.problem(
        path,
        `"${json}" is not a value of ${e.fullName.slice(1)} (${Object.keys(e.values).join(', ')})`,
      );
    }
    if (typeof json === 'number' && Number.isInteger(json)) return json;
    return this.problem(path, `expected a name of ${e.fullName.slice(1)}, got ${describe(json)}`);
  }

  private scalar(kind: string, json: Json, path: string): unknown {
    if (kind === 'string') {
      return typeof json === 'string'
        ? json
        : this.problem(path, `expected a string, got ${describe(json)} (quote it)`);
    }
    if (kind === 'bool') {
      return typeof json === 'boolean'
        ? json
        : this.problem(path, `expected true or false, got ${describe(json)}`);
    }
    if (kind === 'bytes') {
      return typeof json === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(json)
        ? json
        : this.problem(path, `expected base64 bytes, got ${describe(json)}`);
    }
    if (kind === 'double' || kind === 'float') {
      if (typeof json === 'number') return json;
      if (json === 'NaN' || json === 'Infinity' || json === '-Infinity') return Number(json);
      if (typeof json === 'string' && json.trim() !== '' && Number.isFinite(Number(json)))
        return Number(json);
      return this.problem(path, `expected a number, got ${describe(json)}`);
    }
    if (INT32.has(kind) || INT64.has(kind)) {
      const n =
        typeof json === 'number'
          ? json
          : typeof json === 'string' && /^-?\d+$/.test(json)
            ? Number(json)
            : NaN;
      if (!Number.isInteger(n))
        return this.problem(path, `expected an integer (${kind}), got ${describe(json)}`);
      if (kind.startsWith('u') || kind.startsWith('fixed')) {
        if (n < 0) return this.problem(path, `expected a non-negative integer (${kind}), got ${n}`);
      }
      if (INT32.has(kind) && (n > 0xffffffff || n < -0x80000000))
        return this.problem(path, `${n} does not fit ${kind}`);
      return INT64.has(kind) && typeof json === 'string' ? json : n;
    }
    return this.problem(path, `unsupported scalar type ${kind}`);
  }

  /** The proto3 JSON forms of Google's well-known types. */
  private wellKnown(
    type: protobuf.Type,
    json: Json,
    path: string,
  ): { handled: boolean; value?: unknown } {
    const name = type.fullName;
    const wrapped = WRAPPERS[name];
    if (wrapped) {
      const v = isObject(json)
        ? this.problem(path, `expected a bare ${wrapped} (${name.slice(1)}), got an object`)
        : this.scalar(wrapped, json, path);
      return { handled: true, value: v === undefined ? undefined : { value: v } };
    }
    switch (name) {
      case '.google.protobuf.Any':
        return { handled: true, value: this.any(json, path) };
      case '.google.protobuf.Duration':
        return { handled: true, value: this.duration(json, path) };
      case '.google.protobuf.Timestamp': {
        const ms = typeof json === 'string' ? Date.parse(json) : NaN;
        if (Number.isNaN(ms))
          return {
            handled: true,
            value: this.problem(path, `expected an RFC 3339 timestamp, got ${describe(json)}`),
          };
        return {
          handled: true,
          value: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
        };
      }
      case '.google.protobuf.Struct':
        if (!isObject(json))
          return {
            handled: true,
            value: this.problem(path, `expected an object, got ${describe(json)}`),
          };
        return { handled: true, value: structOf(json, type) };
      case '.google.protobuf.Value':
        return { handled: true, value: valueOf(json, type) };
      case '.google.protobuf.ListValue':
        if (!Array.isArray(json))
          return {
            handled: true,
            value: this.problem(path, `expected a list, got ${describe(json)}`),
          };
        return { handled: true, value: listOf(json, type.lookupType('Value')) };
      case '.google.protobuf.FieldMask':
        if (typeof json !== 'string')
          return {
            handled: true,
            value: this.problem(path, `expected "a.b,c" paths, got ${describe(json)}`),
          };
        return { handled: true, value: { paths: json.split(',').filter(Boolean) } };
      case '.google.protobuf.Empty':
        if (!isObject(json) || Object.keys(json).length > 0)
          return { handled: true, value: this.problem(path, 'expected {}') };
        return { handled: true, value: {} };
      default:
        return { handled: false };
    }
  }

  private duration(json: Json, path: string): unknown {
    const m = typeof json === 'string' ? /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
    if (!m) return this.problem(path, `expected a duration like "1.5s", got ${describe(json)}`);
    const sign = m[1] ? -1 : 1;
    return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
  }

  /** {"@type": "type.googleapis.com/pkg.Msg", ...fields}: the inner message is checked and encoded. */
  private any(json: Json, path: string): unknown {
    if (!isObject(json))
      return this.problem(path, `expected an object with "@type", got ${describe(json)}`);
    const url = json['@type'];
    if (typeof url !== 'string' || !url.includes('/')) {
      return this.problem(
        join(path, '@type'),
        'an Any needs "@type": "type.googleapis.com/<full message name>"',
      );
    }
    const typeName = url.slice(url.lastIndexOf('/') + 1);
    const inner = this.resolver.findType(typeName);
    if (!inner)
      return this.problem(join(path, '@type'), `unknown type "${typeName}": no proto defines it`);
    const rest: Record<string, Json> = { ...json };
    delete rest['@type'];
    // A well-known type with a special JSON form carries it under "value" inside an Any.
    const special = inner.fullName in WRAPPERS || VALUE_FORM_TYPES.has(inner.fullName);
    const body = special ? rest.value : rest;
    const before = this.problems.length;
    const converted = this.message(inner, body, path);
    if (this.problems.length > before || converted === undefined) return undefined;
    return {
      type_url: url,
      value: inner.encode(inner.fromObject(converted as Record<string, unknown>)).finish(),
    };
  }
}

function isSyntheticOneof(oneof: protobuf.OneOf): boolean {
  // proto3 `optional x` is a oneof named `_x` holding x alone.
  return oneof.name.startsWith('_') && oneof.fieldsArray.length === 1;
}

/*
 * protobufjs's built-in google/protobuf/struct.proto names Value's fields in camelCase
 * (stringValue) while a .proto loaded with keepCase would use snake_case; fromObject takes
 * whichever the loaded type has, so the names are looked up on the type itself.
 */
function structOf(json: Record<string, Json>, struct: protobuf.Type): Record<string, unknown> {
  const valueType = struct.lookupType('Value');
  return {
    fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, valueOf(v, valueType)])),
  };
}

function listOf(json: Json[], valueType: protobuf.Type): Record<string, unknown> {
  return { values: json.map((v) => valueOf(v, valueType)) };
}

function valueOf(json: Json, valueType: protobuf.Type): Record<string, unknown> {
  const name = (snake: string): string => fieldsOf(valueType).get(snake)?.name ?? snake;
  if (json === null || json === undefined) return { [name('null_value')]: 0 };
  if (typeof json === 'number') return { [name('number_value')]: json };
  if (typeof json === 'string') return { [name('string_value')]: json };
  if (typeof json === 'boolean') return { [name('bool_value')]: json };
  if (Array.isArray(json)) return { [name('list_value')]: listOf(json, valueType) };
  if (isObject(json))
    return { [name('struct_value')]: structOf(json, valueType.lookupType('Struct')) };
  return { [name('string_value')]: String(json) };
}

function describe(json: Json): string {
  if (json === null) return 'null';
  if (Array.isArray(json)) return 'a list';
  if (typeof json === 'object') return 'an object';
  return `${typeof json} ${JSON.stringify(json)}`;
}

/** "did you mean" for a near miss (one edit away, or the same letters in another case). */
function suggest(key: string, type: protobuf.Type): string {
  const names = type.fieldsArray.map((f) => f.name);
  const near = names.find(
    (n) => n.toLowerCase() === key.toLowerCase() || editDistance(n, key) <= 2,
  );
  return near ? ` (did you mean "${near}"?)` : '';
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d = Array.from({ length: a.length + 1 }, (_, i) => [
    i,
    ...new Array<number>(b.length).fill(0),
  ]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
  return d[a.length]![b.length]!;
}
