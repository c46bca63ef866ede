import { mkdir } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { MiosaError } from '../core/errors.js'
import type { Store } from '../store/store.js'
import { VERSION } from '../version.js'
import { createEdge } from './edge-role.js'
import { createFoundation } from './foundation.js'
import { drainWhile } from './shutdown.js'

// `--role edge`: one more edge beside a platform running `--role all`, on the same
// PostgreSQL and blob store. It serves previews and published apps and nothing else;
// what it knows of routes and instances comes from the store, kept fresh by events.

export interface EdgeProcess {
  readonly logger: Logger
  readonly store: Store
  readonly edge: Server
  start(): Promise<{ edgeUrl: string }>
  stop(): Promise<void>
}

export function createEdgeProcess(config: Config, deps: { logger?: Logger } = {}): EdgeProcess {
  if (config.databaseUrl === undefined) {
    throw new MiosaError(
      'invalid',
      '--role edge needs the PostgreSQL store the rest of the platform uses (set MIOSA_DATABASE_URL): an edge on its own SQLite file would know no routes',
      { details: { field: 'role' } },
    )
  }
  const f = createFoundation(config, 'edge', deps)
  const edge = createEdge(f)
  let stopping = false
  return {
    logger: f.logger,
    store: f.store,
    edge: edge.server,
    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
      await f.prepare({ sealing: false })
      const { edgeUrl } = await edge.start()
      f.logger.info({ edge_url: edgeUrl, store: f.store.dialect, version: VERSION, role: 'edge' }, 'miosa edge started')
      return { edgeUrl }
    },
    async stop() {
      if (stopping) return
      stopping = true
      await drainWhile([edge.server], config.shutdownTimeoutMs, () => edge.stop())
      await f.close()
      f.logger.info('stopped')
    },
  }
}
