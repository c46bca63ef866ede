// @ts-check
import { readdirSync } from 'node:fs'
import tseslint from 'typescript-eslint'
import unicorn from 'eslint-plugin-unicorn'
import importX from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'

// Layering rules of DESIGN.md as lint: a rule is better than a sentence in a document.
const SERVER_PACKAGES = ['fastify', 'better-sqlite3', 'pg', 'kysely', 'pino', 'pino-pretty', 'commander', 'dockerode']
const IO_MODULES = ['node:fs', 'node:fs/promises', 'node:http', 'node:https', 'node:net', 'node:child_process', 'node:dgram']

const restrict = (paths, patterns) => ({
  'no-restricted-imports': ['error', { paths: paths.map((name) => ({ name, message: 'not allowed in this layer (see DESIGN.md)' })), patterns }],
})

// What each part of src/ may import from the rest of src/ (besides itself): paths relative to
// src/, a folder ends in '/'. Anything not listed is refused, type imports included, so a new
// part of src/ needs a line here (lint stops with a message until it has one).
const ROOT = ['api/', 'edge/', 'runtime/', 'store/', 'builder/', 'core/', 'blobs/', 'fleet/', 'schemas/', 'secrets/', 'config.ts', 'logger.ts', 'version.ts']
const INTERFACES = ['store/store.ts', 'blobs/blob-store.ts', 'runtime/runtime-driver.ts', 'runtime/instance-driver.ts', 'runtime/image-store.ts', 'builder/builder.ts']
const MAY_IMPORT = {
  // Wire schemas: shared with the browser-safe SDK, so nothing but zod and core's pure helpers.
  'schemas/': ['core/ids.ts', 'core/slugs.ts', 'core/errors.ts', 'core/durations.ts'],
  // The browser-safe client: the wire's types and the error codes, no server code.
  'sdk/': ['schemas/', 'core/errors.ts'],
  // Domain services: only the interfaces of the parts it drives (DESIGN.md), never an implementation.
  // proc-net-tcp.ts: the socket type and isLoopback of the instance driver's interface, pure.
  // agent/protocol.ts: the agent's wire types, which the runtime driver's interface speaks.
  'core/': ['schemas/', ...INTERFACES, 'runtime/proc-net-tcp.ts', 'runtime/agent/protocol.ts'],
  // Implementations of core's ports: core's types, errors and ids, and the wire schemas.
  'store/': ['core/', 'schemas/'],
  'blobs/': ['core/'],
  'secrets/': ['core/'],
  'runtime/': ['core/', 'schemas/'],
  // Events and leadership for a fleet: core's ports, the store's records.
  'fleet/': ['core/', 'schemas/', 'store/store.ts'],
  // Builds run through the runtime's interfaces; archive-check.ts is the shared tar checker.
  'builder/': ['core/', 'schemas/', 'blobs/blob-store.ts', 'runtime/runtime-driver.ts', 'runtime/image-store.ts', 'runtime/archive-check.ts'],
  // The edge serves what core decides, reading blobs and instances through their interfaces.
  'edge/': ['core/', 'schemas/', ...INTERFACES],
  // A thin HTTP adapter over core's services.
  'api/': ['core/', 'schemas/', 'version.ts'],
  // Through the SDK only; builder/ignore-rules.ts is pure. serve.ts and roles/ only by import()
  // in commands/server/run.ts (static imports of them are refused below), so other commands load no server code.
  'cli/': ['sdk/', 'core/errors.ts', 'builder/ignore-rules.ts', 'version.ts', 'serve.ts', 'roles/'],
  'config.ts': ['core/', 'schemas/'],
  'logger.ts': [],
  'version.ts': [],
  // Composition roots: one per role, and the process around them. Everything but the CLI and SDK.
  'roles/': ROOT,
  'platform.ts': [...ROOT, 'roles/'],
  'serve.ts': [...ROOT, 'platform.ts', 'roles/', 'prebuild-templates.ts'],
  'prebuild-templates.ts': ['core/'],
}
const unlisted = readdirSync(new URL('./src', import.meta.url)).filter((entry) => !(entry in MAY_IMPORT) && !(`${entry}/` in MAY_IMPORT))
if (unlisted.length > 0) throw new Error(`eslint.config.js: say what src/${unlisted.join(', src/')} may import (MAY_IMPORT)`)
const LAYER_ZONES = Object.entries(MAY_IMPORT).map(([part, allowed]) => ({
  target: `src/${part}`,
  from: 'src',
  except: [part, ...allowed].map((path) => `./${path}`),
  message: `src/${part} may import only ${allowed.length > 0 ? allowed.map((path) => `src/${path}`).join(', ') : 'itself'} (DESIGN.md, eslint.config.js MAY_IMPORT)`,
}))
// The sandbox agent is bundled alone and runs inside the sandbox: its own files and the protocol.
LAYER_ZONES.push({
  target: ['src/runtime/agent/agent.ts', 'src/runtime/agent/inside'],
  from: 'src',
  except: ['./runtime/agent/agent.ts', './runtime/agent/inside', './runtime/agent/protocol.ts'],
  message: 'the sandbox agent runs inside the sandbox: it imports only its own files and protocol.ts',
})

// A rejection swallowed without a word: log it, or say inside the handler's braces why nothing
// can be done and nobody needs to know (`.catch(() => { /* why */ })`).
const local = {
  rules: {
    'no-silent-catch': {
      meta: { type: 'problem', messages: { silent: 'an empty .catch() handler hides failures: log it, or say in a comment inside its braces why ignoring is safe' } },
      create: (context) => ({
        "CallExpression[callee.property.name='catch'] > :function.arguments[body.type='BlockStatement'][body.body.length=0]"(node) {
          if (context.sourceCode.getCommentsInside(node.body).length === 0) context.report({ node, messageId: 'silent' })
        },
      }),
    },
  },
}

export default tseslint.config(
  // templates/*/workspace/: the starter apps users get, written as a user writes them (CommonJS, console).
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'templates/*/workspace/'] },
  ...tseslint.configs.recommended,
  {
    plugins: { unicorn, 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    rules: {
      'unicorn/filename-case': ['error', { case: 'kebabCase' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { local },
    rules: {
      'local/no-silent-catch': 'error',
      'import-x/no-restricted-paths': ['error', { zones: LAYER_ZONES, basePath: import.meta.dirname }],
      // A cycle makes load order decide what is undefined; `import type` is not a cycle. Tests
      // are leaves (nothing imports them), so src/ alone is checked: it costs ~10 s of CPU.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // Typed rules on src/ (its TypeScript program costs ~20 s of CPU; tests left out for that): a
    // promise nobody awaits loses its error, `void` marks one dropped on purpose.
    // no-misused-promises would add 8-14 s more, so it is not on.
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.build.json', tsconfigRootDir: import.meta.dirname } },
    rules: { '@typescript-eslint/no-floating-promises': 'error' },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: restrict([...SERVER_PACKAGES, ...IO_MODULES], []),
  },
  {
    files: ['src/sdk/**/*.ts'],
    rules: restrict([...SERVER_PACKAGES, 'zod'], [{ regex: '^node:', message: 'the SDK is browser-safe: no Node built-ins' }]),
  },
  {
    files: ['src/schemas/**/*.ts'],
    rules: restrict(SERVER_PACKAGES, [{ regex: '^node:', message: 'wire schemas are shared with the browser-safe SDK' }]),
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: restrict(
      ['fastify', 'better-sqlite3', 'pg', 'kysely', 'dockerode'],
      [{ regex: '^(\\.\\./)+(serve\\.js$|roles/)', message: 'miosa server loads the server with import(), so other commands load no server code' }],
    ),
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
)
