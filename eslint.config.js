// @ts-check
import tseslint from 'typescript-eslint'
import unicorn from 'eslint-plugin-unicorn'

// Layering rules of DESIGN.md as lint: a rule is better than a sentence in a document.
const SERVER_PACKAGES = ['fastify', 'better-sqlite3', 'pg', 'kysely', 'pino', 'pino-pretty', 'commander', 'dockerode']
const IO_MODULES = ['node:fs', 'node:fs/promises', 'node:http', 'node:https', 'node:net', 'node:child_process', 'node:dgram']

const restrict = (paths, patterns) => ({
  'no-restricted-imports': ['error', { paths: paths.map((name) => ({ name, message: 'not allowed in this layer (see DESIGN.md)' })), patterns }],
})

export default tseslint.config(
  // templates/*/workspace/: the starter apps users get, written as a user writes them (CommonJS, console).
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'templates/*/workspace/'] },
  ...tseslint.configs.recommended,
  {
    plugins: { unicorn },
    rules: {
      'unicorn/filename-case': ['error', { case: 'kebabCase' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: restrict(
      [...SERVER_PACKAGES, ...IO_MODULES],
      [
        {
          regex: '(^|/)(api|cli|edge|sdk|mcp|fleet|runtime/docker|store/kysely|blobs/fs)/|(^|/)(platform|serve|config|logger)\\.js$',
          message: 'core imports no adapter: only the interfaces of store, blobs, runtime, builder and data (DESIGN.md)',
        },
      ],
    ),
  },
  {
    files: ['src/sdk/**/*.ts'],
    rules: restrict(
      [...SERVER_PACKAGES, 'zod'],
      [
        { regex: '^node:', message: 'the SDK is browser-safe: no Node built-ins' },
        {
          regex: '^\\.\\./(?!schemas/|core/errors\\.js$)',
          message: 'the SDK imports no server code: only ../schemas (types) and ../core/errors.js',
        },
      ],
    ),
  },
  {
    files: ['src/schemas/**/*.ts'],
    rules: restrict(SERVER_PACKAGES, [
      { regex: '^node:', message: 'wire schemas are shared with the browser-safe SDK' },
      { regex: '^\\.\\./(?!core/(ids|slugs|errors|durations)\\.js$)', message: 'schemas depend on nothing but zod and core ids/slugs/errors/durations' },
    ]),
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: restrict(
      ['fastify', 'better-sqlite3', 'pg', 'kysely', 'dockerode'],
      [
        {
          // builder/ignore-rules.js is pure (no imports): `miosa deploy <dir>` leaves out what a sandbox's snapshot would.
          regex: '^(\\.\\./)+(api|store|edge|blobs|runtime|data|mcp)/|^(\\.\\./)+builder/(?!ignore-rules\\.js$)|^(\\.\\./)+core/(?!errors\\.js$)|^(\\.\\./)+(platform|config|logger)\\.js$',
          message: 'the CLI talks to a server through the SDK only (miosa server loads serve.js lazily)',
        },
      ],
    ),
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
)
