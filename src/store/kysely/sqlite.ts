import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import { KyselyStore } from './kysely-store.js'
import type { AnyDatabase } from './table.js'

/** The embedded default: one SQLite file in the data dir, WAL, foreign keys enforced. */
export function openSqliteStore(file: string): KyselyStore {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const database = new Database(file)
  database.pragma('journal_mode = WAL')
  database.pragma('foreign_keys = ON')
  database.pragma('busy_timeout = 5000')
  database.pragma('synchronous = NORMAL')
  const db = new Kysely<AnyDatabase>({ dialect: new SqliteDialect({ database }) })
  return new KyselyStore(db, 'sqlite')
}
