import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AugurError } from './errors.js';

/*
 * Loading and merging configuration, for any schema: each part owns its section's schema and
 * defaults (src/<part>/config.ts), and each command composes the sections it runs
 * (src/serve/config.ts for `augur serve`). Nothing here knows a part.
 *
 * Precedence, lowest first: defaults < YAML file (--config / AUGUR_CONFIG)
 * < AUGUR_* environment variables < command-line flags.
 */

type Tree = Record<string, unknown>;

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  }
  return out;
}

const camel = (s: string): string =>
  s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * `AUGUR_GRPC_LISTEN=...` sets `grpcListen`; `AUGUR_LPS__STALE_AFTER_INTERVALS=5` sets
 * `lps.staleAfterIntervals` (a double underscore separates sections). Values are read
 * as YAML scalars, so numbers and booleans keep their type.
 */
export function configFromEnv(env: NodeJS.ProcessEnv): Tree {
  let out: Tree = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('AUGUR_') || name === 'AUGUR_CONFIG' || raw === undefined) continue;
    const path = name.slice('AUGUR_'.length).split('__').map(camel);
    let leaf: unknown = parseYaml(raw);
    if (leaf === null) leaf = raw;
    for (let i = path.length - 1; i >= 0; i--) leaf = { [path[i]!]: leaf };
    out = merge(out, leaf as Tree);
  }
  return out;
}

export function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AugurError(
      'CONFIG_UNREADABLE',
      `cannot read config file ${file}: ${(err as Error).message}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new AugurError(
      'CONFIG_INVALID',
      `config file ${file} is not valid YAML: ${(err as Error).message}`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (!isTree(doc))
    throw new AugurError('CONFIG_INVALID', `config file ${file} must be a YAML mapping`);
  return doc;
}

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: Tree;
}

/** Loads, merges and validates a configuration against `schema`; an invalid value names its path. */
export function loadConfigWith<S extends z.ZodType>(
  schema: S,
  { file, env = process.env, flags = {} }: LoadConfigOptions = {},
): z.infer<S> {
  const path = file ?? env.AUGUR_CONFIG;
  const fromFile = path ? readConfigFile(path) : {};
  const merged = merge(merge(fromFile, configFromEnv(env)), flags);
  const result = schema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new AugurError('CONFIG_INVALID', `invalid configuration: ${problems}`);
  }
  return result.data;
}
