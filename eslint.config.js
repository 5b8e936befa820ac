// One linter for the whole tree: typescript-eslint with type information, so that floating promises
// (a dropped rejection in a rank link would hang the chain) are caught before they run.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const plainJs = ['*.js', 'bin/*.js', 'test/support/*.js'];

export default tseslint.config(
  {
    ignores: [
      'scratch/',
      'dist/',
      'node_modules/',
      'core/gen/',
      'worker/onnx/gen/',
      'coverage/',
      '.cache/',
      '.device/',
      'charts/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: plainJs },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      '@typescript-eslint/no-unnecessary-condition': ['error', { allowConstantLoopConditions: true }],
      // noUncheckedIndexedAccess makes every indexed read optional; numeric loops assert what their bounds prove.
      '@typescript-eslint/no-non-null-assertion': 'off',
      complexity: ['warn', 25],
    },
  },
  {
    // @kubernetes/client-node's models (V1Pod, ...) are classes without behaviour, and its API takes
    // plain objects (it serializes by attribute maps), so object literals for them are the norm.
    files: ['operator/**/*.ts', 'test/**/*.ts', 'cli/**/*.ts'],
    rules: { '@typescript-eslint/no-unsafe-class-instance-assignment': 'off' },
  },
  {
    files: plainJs,
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { URL: 'readonly', process: 'readonly', globalThis: 'readonly' } },
  },
);
