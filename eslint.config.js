// Lint rules, including the layer rule: which folder may import what. The layers are enforced
// here (and proven by test/lint/layers.test.ts), not remembered.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';

const nodeBuiltins = ['fs', 'path', 'os', 'child_process', 'worker_threads', 'crypto', 'net', 'http', 'https', 'stream', 'zlib', 'url', 'util', 'events', 'module', 'buffer', 'process', 'tty', 'dgram', 'dns', 'readline', 'perf_hooks', 'assert', 'v8', 'vm'];
const nodeImports = [...nodeBuiltins.map((m) => `node:${m}`), ...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}/*`), ...nodeBuiltins.map((m) => `${m}/*`)];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'out/', 'release/', 'test-results/', 'bench/results/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // shared/: the contract between main and renderer; pure TypeScript only.
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'shared/ must not import Electron.' }],
        patterns: [
          { group: ['**/electron/**', '**/renderer/**'], message: 'shared/ imports nothing from electron/ or renderer/.' },
          { group: nodeImports, message: 'shared/ must not import Node built-ins.' },
        ],
      }],
    },
  },
  {
    // renderer/: runs sandboxed in a browser; talks to main only through the shared contract.
    files: ['renderer/**/*.ts', 'renderer/**/*.tsx'],
    languageOptions: { globals: { ...globals.browser } },
    plugins: { 'react-hooks': reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'The renderer must not import Electron; use window.stasis.' }],
        patterns: [
          { group: ['**/electron/**'], message: 'The renderer never imports electron/; use the shared contract.' },
          { group: nodeImports, message: 'The renderer must not import Node built-ins.' },
        ],
      }],
    },
  },
  {
    // Everything under electron/ except main/ must run under plain Node (CLI, tests, browser mode).
    files: ['electron/**/*.ts'],
    ignores: ['electron/main/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'Only electron/main/ may import Electron; the engine, server and CLI run under plain Node.' }],
        patterns: [{ group: ['**/renderer/**'], message: 'electron/ never imports renderer/.' }],
      }],
    },
  },
  {
    files: ['electron/main/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/renderer/**'], message: 'electron/ never imports renderer/.' }],
      }],
    },
  },
);
