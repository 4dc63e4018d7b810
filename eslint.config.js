// Type-aware lint. The import rules below hold the architecture:
// core <- protocol <- {store, coordinator, client <- worker} <- {cli, dashboard}.
// The worker uses the client's Group as the handle of a group a task spawned
// (over the worker's session instead of HTTP); the client never imports the worker.
import tseslint from 'typescript-eslint';

const layer = (dir, forbidden) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          group: [`../${f}/*`, `../${f}`, `../../${f}/*`],
          message: `src/${dir} must not import from src/${f}: imports flow core <- protocol <- {store, coordinator, client <- worker} <- cli.`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'bench/**',
      '*.config.js',
      'test/fixtures/**/*.js',
      'test/fixtures/**/*.cjs',
      'scripts/**/*.mjs',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: [
                'describe',
                'it',
                'test',
                'suite',
                'before',
                'after',
                'beforeEach',
                'afterEach',
              ],
            },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  layer('core', [
    'protocol',
    'store',
    'coordinator',
    'worker',
    'client',
    'cli',
    'dashboard',
    'testing',
  ]),
  layer('protocol', ['store', 'coordinator', 'worker', 'client', 'cli', 'dashboard', 'testing']),
  layer('store', ['coordinator', 'worker', 'client', 'cli', 'dashboard']),
  layer('coordinator', ['worker', 'client', 'cli']),
  layer('worker', ['store', 'coordinator', 'cli', 'dashboard']),
  layer('client', ['store', 'coordinator', 'worker', 'cli', 'dashboard']),
  {
    files: ['src/core/**/*.ts'],
    ignores: ['src/core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'net', 'http', 'os', 'child_process'],
              message: 'src/core is pure: no I/O, no clock, no process.',
            },
            {
              group: [
                '../protocol/*',
                '../store/*',
                '../coordinator/*',
                '../worker/*',
                '../client/*',
                '../cli/*',
              ],
              message: 'src/core imports nothing of the shell.',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'process', 'setTimeout', 'setInterval', 'fetch'],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'core gets time as an argument (now).' },
        {
          object: 'Math',
          property: 'random',
          message: 'core gets randomness as an argument (random).',
        },
      ],
    },
  },
);
