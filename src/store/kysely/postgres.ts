import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { KyselyStore } from './kysely-store.js'
import type { AnyDatabase } from './table.js'

/** PostgreSQL for a fleet: the same tables and queries as SQLite, through a pool. */
export function openPostgresStore(url: string, onPoolError: (error: Error) => void): KyselyStore {
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', onPoolError)
  const db = new Kysely<AnyDatabase>({ dialect: new PostgresDialect({ pool }) })
  return new KyselyStore(db, 'postgres')
}
