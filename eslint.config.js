// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * Folder boundaries (issue 12; the folder map in docs/design.md). Flat config does not merge a rule's options
 * across blocks: the last block matching a file wins, so every block repeats the commander ban.
 */
const UP = '^(\\.\\./)+';
const onlyCliImportsCommander = {
  group: ['commander', '@commander-js/*'],
  message: 'only src/cli/ imports commander: keep command-line parsing under src/cli/.',
};
/** @param {string[]} folders @param {string} why */
const never = (folders, why) => ({ regex: `${UP}(${folders.join('|')})/`, message: why });
/** @param {string[]} files @param {...object} patterns */
const boundary = (files, ...patterns) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns: [onlyCliImportsCommander, ...patterns] }] },
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'scripts/*.mjs', 'bench/*.mjs', 'eslint.config.js'] },
  eslint.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
    },
  },

  boundary(['src/**/*.ts']),
  { files: ['src/cli/**/*.ts'], rules: { 'no-restricted-imports': 'off' } },
  boundary(
    ['src/core/**/*.ts'],
    {
      regex: '^(?!zod$|\\.)',
      message: 'core/ is pure: no node:* and no package but zod.',
    },
    {
      regex: '^\\.\\./(?!errors\\.js$|generation/names\\.js$)',
      message: 'core/ imports nothing outside core/ but src/errors.ts and src/generation/names.ts.',
    },
  ),
  boundary(
    ['src/generation/**/*.ts'],
    never(
      ['sink', 'source', 'gate', 'cli', 'status'],
      'generation/ serves every host: never sink/, source/, gate/, cli/ or status/.',
    ),
  ),
  // after the generation/ block: the last matching block wins
  boundary(['src/generation/names.ts'], {
    regex: '^',
    message: 'generation/names.ts is a pure leaf: it imports nothing.',
  }),
  boundary(
    ['src/adapters/**/*.ts'],
    never(
      ['generation', 'sink', 'source', 'gate', 'cli', 'status'],
      'adapters/ are side effects with no process knowledge: never generation/, sink/, source/, gate/, cli/ or status/.',
    ),
  ),
  boundary(
    ['src/gate/**/*.ts'],
    never(['sink', 'source'], 'the gate (forced command on the source) never imports sink/ or source/.'),
  ),
  boundary(
    ['src/sink/**/*.ts', 'src/offsite/**/*.ts'],
    never(
      ['source', 'gate'],
      'the sink host never imports source/ or gate/ (shared code lives in generation/, core/, adapters/).',
    ),
  ),
  boundary(
    ['src/source/**/*.ts'],
    never(
      ['sink', 'gate'],
      'the source host never imports sink/ or gate/ (shared code lives in generation/, core/, adapters/).',
    ),
  ),
);
