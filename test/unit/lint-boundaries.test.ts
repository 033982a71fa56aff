/**
 * The folder boundaries in eslint.config.js prove themselves: a wrong import in each folder is reported,
 * an allowed one is not (issue 12; the folder map in docs/design.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const cwd = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({
  cwd,
  // only the boundary rule: no type information needed
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
});

async function reported(file: string, spec: string): Promise<boolean> {
  const [r] = await eslint.lintText(`import '${spec}';\n`, { filePath: `${cwd}/${file}` });
  return (r?.messages ?? []).some((m) => m.ruleId === 'no-restricted-imports');
}

const cases: Array<[file: string, bad: string[], ok: string[]]> = [
  [
    'src/core/retention.ts',
    [
      'node:fs',
      'fs',
      'pino',
      '../adapters/log.js',
      '../config/schema.js',
      '../generation/list.js',
      'commander',
    ],
    ['zod', '../errors.js', '../generation/names.js', './meta.js'],
  ],
  ['src/generation/names.ts', ['./list.js', 'node:path', '../core/meta.js'], []],
  [
    'src/generation/list.ts',
    ['../sink/state.js', '../source/state.js', '../gate/gate.js', '../cli/app.js', '../status/status.js'],
    ['../core/meta.js', '../adapters/fsx.js', '../errors.js', './names.js'],
  ],
  [
    'src/adapters/log.ts',
    ['../generation/list.js', '../sink/state.js', '../source/state.js', '../gate/gate.js', '../cli/app.js'],
    ['../core/meta.js', '../errors.js', './fsx.js'],
  ],
  [
    'src/gate/gate.ts',
    ['../sink/state.js', '../source/state.js'],
    ['../generation/list.js', '../adapters/fsx.js'],
  ],
  ['src/sink/state.ts', ['../source/state.js', '../gate/gate.js'], ['../generation/list.js']],
  ['src/source/state.ts', ['../sink/state.js', '../gate/gate.js'], ['../generation/list.js']],
  ['src/status/status.ts', ['commander', '@commander-js/extra-typings'], ['../sink/state.js']],
  ['src/cli/app.ts', [], ['commander', '@commander-js/extra-typings', '../sink/state.js']],
];

for (const [file, bad, ok] of cases) {
  test(`boundaries of ${file}: ${bad.length} wrong imports reported, ${ok.length} allowed ones not`, async () => {
    for (const spec of bad)
      assert.equal(await reported(file, spec), true, `${file}: import '${spec}' must be reported`);
    for (const spec of ok)
      assert.equal(await reported(file, spec), false, `${file}: import '${spec}' is allowed`);
  });
}
