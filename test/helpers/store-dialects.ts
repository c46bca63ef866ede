import Database from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import { KyselyStore } from '../../src/store/kysely/kysely-store.js'
import type { AnyDatabase } from '../../src/store/kysely/table.js'
import { createTestDatabase } from './postgres.js'

// A bare store on each dialect (SQLite in memory, a fresh PostgreSQL database), unmigrated,
// for suites that test tables and migrations directly: each runs once per entry.

export interface OpenedStore {
  db: Kysely<AnyDatabase>
  store: KyselyStore
  close(): Promise<void>
}

export const STORE_DIALECTS: readonly [string, () => Promise<OpenedStore>][] = [
  [
    'sqlite',
    async () => {
      const database = new Database(':memory:')
      database.pragma('foreign_keys = ON')
      const db = new Kysely<AnyDatabase>({ dialect: new SqliteDialect({ database }) })
      return { db, store: new KyselyStore(db, 'sqlite'), close: () => db.destroy() }
    },
  ],
  [
    'postgres',
    async () => {
      const database = await createTestDatabase()
      const db = new Kysely<AnyDatabase>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 4 }) }) })
      return {
        db,
        store: new KyselyStore(db, 'postgres'),
        close: async () => {
          await db.destroy()
          await database.drop()
        },
      }
    },
  ],
]
