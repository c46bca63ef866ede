import { join } from 'node:path'
import type { Store } from './store.js'
import { openPostgresStore } from './kysely/postgres.js'
import { openSqliteStore } from './kysely/sqlite.js'

export interface StoreConfig {
  /** `postgres://…` for PostgreSQL; unset for the embedded SQLite file in `dataDir`. */
  databaseUrl?: string | undefined
  dataDir: string
}

export function openStore(config: StoreConfig, onPoolError: (error: Error) => void = () => {}): Store {
  if (config.databaseUrl !== undefined) return openPostgresStore(config.databaseUrl, onPoolError)
  return openSqliteStore(join(config.dataDir, 'miosa.db'))
}
