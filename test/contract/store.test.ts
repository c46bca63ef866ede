import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import { openPostgresStore } from '../../src/store/kysely/postgres.js'
import { openSqliteStore } from '../../src/store/kysely/sqlite.js'
import { createTestDatabase } from '../helpers/postgres.js'
import { storeContract } from './store.case.js'

// The same contract on both dialects. PostgreSQL is never skipped: without
// MIOSA_TEST_DATABASE_URL its suite fails with the helper's message.

storeContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'miosa-store-'))
  const store = openSqliteStore(join(dir, 'miosa.db'))
  return {
    store,
    async close() {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

storeContract('postgres', async () => {
  const database = await createTestDatabase()
  const poolErrors: Error[] = []
  const store = openPostgresStore(database.url, (error) => poolErrors.push(error))
  return {
    store,
    async close() {
      await store.close()
      // Taken before the drop: DROP … WITH (FORCE) terminates any connection the pool is
      // still closing, and that "administrator command" is ours, not the store's error.
      const errors = [...poolErrors]
      await database.drop()
      expect(errors).toEqual([])
    },
  }
})

describe('SQLite file', () => {
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'miosa-store-file-'))
  })

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps its rows across a close and reopen, and migrating it again changes nothing', async () => {
    const file = join(dir, 'nested', 'miosa.db')
    const first = openSqliteStore(file)
    await first.migrate()
    const org = {
      id: newId('organization'),
      name: 'Durable',
      slug: 'durable',
      external_user_id: null,
      external_project_id: null,
      external_workspace_id: null,
      metadata: { kept: 'yes' },
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: '2026-01-01T00:00:00.000Z',
    }
    await first.organizations.insert(org)
    await first.settings.set('marker', 'v1')
    await first.close()

    const second = openSqliteStore(file)
    try {
      await second.migrate()
      expect(await second.organizations.get({}, org.id)).toEqual(org)
      expect(await second.settings.get('marker')).toBe('v1')
    } finally {
      await second.close()
    }
  })
})
