import { mkdir } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { BlobStore } from '../blobs/blob-store.js'
import type { Config } from '../config.js'
import type { SandboxReaper } from '../core/sandbox-reaper.js'
import type { SandboxReconciler } from '../core/sandbox-reconciler.js'
import type { Services } from '../core/services.js'
import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { Store } from '../store/store.js'
import { VERSION } from '../version.js'
import { createApi } from './api-role.js'
import { createEdge } from './edge-role.js'
import { createFoundation } from './foundation.js'
import { drainWhile } from './shutdown.js'
import { createWorker } from './worker-role.js'

// `--role all` (the default): the API, the edge and the worker in one process, which is
// how one machine runs the whole platform. Further edges may join it (`--role edge`).

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
  readonly runtime: RuntimeDriver
  readonly services: Services
  readonly reconciler: SandboxReconciler
  readonly reaper: SandboxReaper
  readonly api: FastifyInstance
  readonly edge: Server
  start(): Promise<StartedPlatform>
  /** Stops taking requests, lets in-flight ones finish (up to the shutdown timeout), closes the store. */
  stop(): Promise<void>
}

export function createAll(config: Config, deps: { logger?: Logger } = {}): Platform {
  const f = createFoundation(config, 'all', deps)
  const api = createApi(f)
  const edge = createEdge(f)
  const worker = createWorker(f)
  let stopping = false
  return {
    config,
    logger: f.logger,
    store: f.store,
    blobs: f.blobs,
    runtime: f.runtime,
    services: f.services,
    reconciler: worker.reconciler,
    reaper: worker.reaper,
    api: api.server,
    edge: edge.server,
    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
      await f.prepare()
      await worker.recover()
      const { apiUrl, generatedRootKey, rootKeyFile } = await api.start()
      const { edgeUrl } = await edge.start()
      await worker.start()
      f.logger.info({ api_url: apiUrl, edge_url: edgeUrl, data_dir: config.dataDir, store: f.store.dialect, version: VERSION, role: 'all' }, 'miosa started')
      return { apiUrl, edgeUrl, generatedRootKey, rootKeyFile }
    },
    async stop() {
      if (stopping) return
      stopping = true
      f.logger.info('shutting down: draining requests')
      await drainWhile([edge.server, api.server.server], config.shutdownTimeoutMs, () => Promise.all([api.stop(), edge.stop()]))
      await worker.stop()
      await f.close()
      f.logger.info('stopped')
    },
  }
}
