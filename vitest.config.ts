import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Compiles the sandbox agent and builds template images once (minutes on a fresh machine).
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Two cores here: more workers only thrash.
    maxWorkers: 2,
  },
})
