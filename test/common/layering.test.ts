import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importEdges, layeringBreaches } from '../../scripts/import-graph.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

describe('the layering of src/', () => {
  it('has no import cycle, no part that reaches up to an assembler, an RRM without xDS, and a grpc-lb on common/ alone', () => {
    expect(layeringBreaches(importEdges(SRC))).toEqual([]);
  });

  it('reads and writes protobuf in src/xds with one library, @bufbuild/protobuf', () => {
    const xds = join(SRC, 'xds');
    const libraries = new Set<string>();
    for (const file of readdirSync(xds).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(join(xds, file), 'utf8');
      for (const m of text.matchAll(
        /from '(protobufjs|@grpc\/proto-loader|@bufbuild\/protobuf)[^']*'/g,
      ))
        libraries.add(m[1]!);
    }
    expect([...libraries]).toEqual(['@bufbuild/protobuf']);
  });

  it('finds cycles, upward imports and the RRM reaching into xDS in a tree that has them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'augur-layering-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const files: Record<string, string> = {
      'common/util.ts': "import { store } from '../lps/store.js';\nexport const util = store;\n",
      'lps/store.ts': "import { util } from '../common/util.js';\nexport const store = util;\n",
      'rrm/table.ts': "import type { Place } from '../xds/resources.js';\nexport type P = Place;\n",
      'rrm/pick.ts': "import { b } from '../grpc-lb/balancer.js';\nexport const p = b;\n",
      'grpc-lb/balancer.ts': "import { store } from '../lps/store.js';\nexport const b = store;\n",
      'xds/resources.ts':
        "import type { Ctx } from '../serve/plane.js';\nexport type Place = Ctx;\n",
      'serve/plane.ts':
        "import type { P } from '../rrm/table.js';\nimport '../xds/resources.js';\nexport type Ctx = P;\n",
      // Two files that name each other's types only: no load-order cycle.
      'agent/a.ts': "import type { B } from './b.js';\nexport interface A { b?: B }\n",
      'agent/b.ts': "import { type A } from './a.js';\nexport interface B { a?: A }\n",
      // The known exception: lps/forecast and lps/score.
      'lps/forecast/f.ts': "import { s } from '../score/s.js';\nexport const f = s;\n",
      'lps/score/s.ts':
        "export const s = 1;\nexport const later = () => import('../forecast/f.js');\n",
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const breaches = layeringBreaches(importEdges(dir));
    expect(breaches).toEqual(
      expect.arrayContaining([
        'common/util.ts imports lps/store.ts: common/ imports no part',
        "rrm/table.ts imports xds/resources.ts: the RRM knows only the LPS's protocol, not the xDS server",
        'xds/resources.ts imports serve/plane.ts: a part does not import its assembler (serve/)',
        "rrm/pick.ts imports grpc-lb/balancer.ts: the RRM and the gRPC clients' policy share only common/",
        "grpc-lb/balancer.ts imports lps/store.ts: grpc-lb/ (loaded into users' gRPC clients) imports only common/",
        'files common/util.ts, lps/store.ts import each other at load time',
      ]),
    );
    expect(breaches.filter((b) => b.startsWith('folders '))).toEqual([
      'folders common, lps import each other (common -> lps; lps -> common)',
      'folders rrm, serve, xds import each other (rrm -> xds; serve -> rrm; serve -> xds; xds -> serve)',
    ]);
    expect(breaches.join('\n')).not.toMatch(/agent\/|lps\/forecast|lps\/score/);
    expect(layeringBreaches(importEdges(dir), [])).toContainEqual(
      'folders lps/forecast, lps/score import each other (lps/forecast -> lps/score; lps/score -> lps/forecast)',
    );
  });
});
