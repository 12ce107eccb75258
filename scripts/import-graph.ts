// The layering of src/ as rules over its import graph; test/layering.test.ts fails on a breach.
// `npx tsx scripts/import-graph.ts` prints the breaches of this checkout (exit 1 if any).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** One import of one file of src/ by another. */
export interface ImportEdge {
  from: string;
  to: string;
  /** `import type` / `export type`: no code runs, but the layers still depend on each other. */
  typeOnly: boolean;
  /** `await import(...)`: loaded when first needed, so it cannot take part in a load-order cycle. */
  dynamic: boolean;
}

/**
 * Folder cycles allowed for now, each with the reason and who removes it. A cycle between two
 * sibling folders means neither can be understood, tested or replaced without the other.
 */
export const KNOWN_FOLDER_CYCLES: ReadonlyArray<{ folders: [string, string]; why: string }> = [
  {
    folders: ['lps/forecast', 'lps/score'],
    why: 'score/weight.ts uses forecast/baselines.ts while forecast/scorer.ts uses score/: issue 11 rewrites weight.ts and removes it',
  },
];

/** The assemblers: they wire the parts together, and no part imports them. */
const ASSEMBLERS = ['serve', 'demo', 'cli'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function isTypeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.js'` runs x
  if (clause.isTypeOnly) return true;
  const bindings = clause.namedBindings;
  return (
    clause.name === undefined &&
    bindings !== undefined &&
    ts.isNamedImports(bindings) &&
    bindings.elements.length > 0 &&
    bindings.elements.every((e) => e.isTypeOnly)
  );
}

function isTypeOnlyExport(node: ts.ExportDeclaration): boolean {
  if (node.isTypeOnly) return true;
  const clause = node.exportClause;
  return (
    clause !== undefined &&
    ts.isNamedExports(clause) &&
    clause.elements.length > 0 &&
    clause.elements.every((e) => e.isTypeOnly)
  );
}

/** Every import between files of `srcDir`, paths relative to it (`lps/store.ts`). */
export function importEdges(srcDir: string): ImportEdge[] {
  const root = resolve(srcDir);
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
    const add = (specifier: string, typeOnly: boolean, dynamic: boolean): void => {
      if (!specifier.startsWith('.')) return;
      const target = resolve(dirname(file), specifier).replace(/\.js$/, '.ts');
      if (!target.startsWith(root + sep)) return;
      edges.push({
        from: relative(root, file).split(sep).join('/'),
        to: relative(root, target).split(sep).join('/'),
        typeOnly,
        dynamic,
      });
    };
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        add(node.moduleSpecifier.text, isTypeOnlyImport(node), false);
      } else if (
        ts.isExportDeclaration(node) &&
        node.moduleSpecifier &&
        ts.isStringLiteral(node.moduleSpecifier)
      ) {
        add(node.moduleSpecifier.text, isTypeOnlyExport(node), false);
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteral(node.arguments[0])
      ) {
        add(node.arguments[0].text, false, true);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return edges;
}

/** The cycles of a directed graph: its strongly connected components with more than one node. */
export function cycles(edges: ReadonlyArray<[string, string]>): string[][] {
  const next = new Map<string, string[]>();
  for (const [a, b] of edges) {
    if (!next.has(a)) next.set(a, []);
    if (!next.has(b)) next.set(b, []);
    next.get(a)!.push(b);
  }
  // Tarjan's algorithm.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) connect(v);
  return found;
}

const folderOf = (file: string): string => (file.includes('/') ? dirname(file) : '.');
const topOf = (file: string): string => file.split('/')[0]!;

/**
 * Breaches of the layering of src/, each a sentence naming the files:
 * - `gen` (generated from proto/) imports only `gen`; `common` imports only `common` and `gen`;
 * - no part imports an assembler (`serve`, `demo`, `cli`), and `rrm` imports nothing of `xds`
 *   (the RRM can run alone next to Envoy and knows only the LPS's protocol);
 * - `grpc-lb` (the policy users load into their gRPC clients) imports only `common`, and `rrm`
 *   nothing of it: the two pickers share the rule through common/expected-delay.ts;
 * - sibling folders (the parts under src/, their sub-folders under each part) form no cycle,
 *   besides KNOWN_FOLDER_CYCLES;
 * - files form no cycle through imports that run code at load time.
 */
export function layeringBreaches(
  edges: readonly ImportEdge[],
  known = KNOWN_FOLDER_CYCLES,
): string[] {
  const breaches: string[] = [];
  for (const e of edges) {
    const from = topOf(e.from);
    const to = topOf(e.to);
    const says = `${e.from} imports ${e.to}`;
    if (from === 'gen' && to !== 'gen') breaches.push(`${says}: generated code imports only gen/`);
    if (from === 'common' && to !== 'common' && to !== 'gen')
      breaches.push(`${says}: common/ imports no part`);
    if (ASSEMBLERS.includes(to) && from !== to && !ASSEMBLERS.includes(from))
      breaches.push(`${says}: a part does not import its assembler (${to}/)`);
    if (to === 'cli' && from !== 'cli') breaches.push(`${says}: nothing imports the CLI`);
    if (from === 'rrm' && to === 'xds')
      breaches.push(`${says}: the RRM knows only the LPS's protocol, not the xDS server`);
    if (from === 'rrm' && to === 'grpc-lb')
      breaches.push(`${says}: the RRM and the gRPC clients' policy share only common/`);
    if (from === 'grpc-lb' && to !== 'grpc-lb' && to !== 'common')
      breaches.push(`${says}: grpc-lb/ (loaded into users' gRPC clients) imports only common/`);
  }

  // Sibling folders: for each import, the two children of the deepest folder holding both ends.
  const siblingEdges = new Map<string, [string, string]>();
  for (const e of edges) {
    const a = folderOf(e.from).split('/');
    const b = folderOf(e.to).split('/');
    let common = 0;
    while (common < a.length && common < b.length && a[common] === b[common]) common++;
    if (common === a.length || common === b.length) continue; // same folder, or one holds the other
    const pair: [string, string] = [
      a.slice(0, common + 1).join('/'),
      b.slice(0, common + 1).join('/'),
    ];
    siblingEdges.set(pair.join(' -> '), pair);
  }
  const allowed = new Set(known.map((k) => [...k.folders].sort().join(' ')));
  for (const cycle of cycles([...siblingEdges.values()])) {
    if (allowed.has(cycle.join(' '))) continue;
    const via = [...siblingEdges.values()]
      .filter(([a, b]) => cycle.includes(a) && cycle.includes(b))
      .map((pair) => pair.join(' -> '))
      .sort();
    breaches.push(`folders ${cycle.join(', ')} import each other (${via.join('; ')})`);
  }

  const loadEdges = edges
    .filter((e) => !e.typeOnly && !e.dynamic)
    .map((e): [string, string] => [e.from, e.to]);
  for (const cycle of cycles(loadEdges)) {
    breaches.push(`files ${cycle.join(', ')} import each other at load time`);
  }
  return breaches;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const breaches = layeringBreaches(importEdges(fileURLToPath(new URL('../src', import.meta.url))));
  for (const b of breaches) process.stdout.write(`${b}\n`);
  process.exit(breaches.length > 0 ? 1 : 0);
}
