import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApiServer } from './api/api-server.js'
import type { BlobStore } from './blobs/blob-store.js'
import { openBlobStore } from './blobs/open-blob-store.js'
import type { Config } from './config.js'
import { createServices } from './core/services.js'
import type { Services } from './core/services.js'
import { createEdgeServer } from './edge/edge-server.js'
import { createLogger } from './logger.js'
import { openStore } from './store/open-store.js'
import type { Store } from './store/store.js'
import { VERSION } from './version.js'

export interface StartedPlatform {
  apiUrl: string
  edgeUrl: string
  /** Set only on the first start, when the root key was generated: show it once. */
  generatedRootKey: string | undefined
  rootKeyFile: string | undefined
}

export interface Platform {
  readonly config: Config
  readonly logger: Logger
  readonly store: Store
  readonly blobs: BlobStore
  readonly services: Services
  readonly api: FastifyInstance
  readonly edge: Server
  start(): Promise<StartedPlatform>
  /** Stops taking requests, lets in-flight ones finish (up to the shutdown timeout), closes the store. */
  stop(): Promise<void>
}

/** The one composition root: every adapter and service is wired here and nowhere else. */
export function createPlatform(config: Config, deps: { logger?: Logger } = {}): Platform {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty })
  const store = openStore(config, (error) => logger.warn({ err: error }, 'database pool: idle client error'))
  const blobs = openBlobStore({ kind: 'fs', dir: join(config.dataDir, 'blobs') })
  const services = createServices({ store })
  let stopping = false
  const api = buildApiServer({
    services,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    version: VERSION,
    checkReady: async () => {
      if (stopping) throw new Error('shutting down')
      await store.ping()
    },
  })
  const edge = createEdgeServer({ logger: logger.child({ component: 'edge' }), baseDomain: config.baseDomain })

  return {
    config,
    logger,
    store,
    blobs,
    services,
    api,
    edge,
    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
      await store.migrate()
      const { generated } = await services.apiKeys.bootstrapRootKey(config.rootKey)
      const rootKeyFile = join(config.dataDir, 'root-key')
      if (generated !== undefined) await writeFile(rootKeyFile, `${generated}\n`, { mode: 0o600, flag: 'w' })
      await api.listen({ host: config.host, port: config.port })
      edge.listen(config.edgePort, config.host)
      await once(edge, 'listening')
      const apiPort = (api.server.address() as AddressInfo).port
      const edgePort = (edge.address() as AddressInfo).port
      const started = {
        apiUrl: `http://${displayHost(config.host)}:${apiPort}`,
        edgeUrl: `http://${config.baseDomain}:${edgePort}`,
        generatedRootKey: generated,
        rootKeyFile: config.rootKey === undefined ? rootKeyFile : undefined,
      }
      logger.info(
        { api_url: started.apiUrl, edge_url: started.edgeUrl, data_dir: config.dataDir, store: store.dialect, version: VERSION },
        'miosa started',
      )
      return started
    },
    async stop() {
      if (stopping) return
      stopping = true
      logger.info('shutting down: draining requests')
      const timer = setTimeout(() => {
        edge.closeAllConnections()
        api.server.closeAllConnections()
      }, config.shutdownTimeoutMs)
      timer.unref()
      // A keep-alive connection whose last request finishes during the drain would otherwise
      // idle until its keep-alive timeout; close each one as soon as it goes idle.
      const closeIdle = () => {
        edge.closeIdleConnections()
        api.server.closeIdleConnections()
      }
      const sweeper = setInterval(closeIdle, 50)
      const edgeClosed = edge.listening ? new Promise<void>((resolve) => edge.close(() => resolve())) : Promise.resolve()
      closeIdle()
      await Promise.all([api.close(), edgeClosed])
      clearInterval(sweeper)
      clearTimeout(timer)
      await store.close()
      logger.info('stopped')
    },
  }
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
