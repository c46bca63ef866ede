import { writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApiServer } from '../api/api-server.js'
import { rateLimiterFor } from '../core/rate-limiter.js'
import { VERSION } from '../version.js'
import type { Foundation } from './foundation.js'

// The control plane's HTTP API: routes under /api/v1 (and /v1), OpenAPI, health probes.

export interface ApiRole {
  readonly server: FastifyInstance
  /** Makes the root key on the first start, then listens. */
  start(): Promise<{ apiUrl: string; generatedRootKey: string | undefined; rootKeyFile: string | undefined }>
  /** Stops taking requests and lets in-flight ones finish (the caller bounds how long). */
  stop(): Promise<void>
}

export function createApi(f: Foundation): ApiRole {
  const { config, logger, store, services } = f
  let stopping = false
  const server = buildApiServer({
    services,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    version: VERSION,
    rateLimiter: rateLimiterFor({ perSecond: config.rateLimitRps, burst: config.rateLimitBurst }),
    checkReady: async () => {
      if (stopping) throw new Error('shutting down')
      await store.ping()
    },
  })
  return {
    server,
    async start() {
      const { generated } = await services.apiKeys.bootstrapRootKey(config.rootKey)
      const rootKeyFile = join(config.dataDir, 'root-key')
      if (generated !== undefined) await writeFile(rootKeyFile, `${generated}\n`, { mode: 0o600, flag: 'w' })
      await server.listen({ host: config.host, port: config.port })
      const port = (server.server.address() as AddressInfo).port
      return { apiUrl: `http://${displayHost(config.host)}:${port}`, generatedRootKey: generated, rootKeyFile: config.rootKey === undefined ? rootKeyFile : undefined }
    },
    async stop() {
      stopping = true
      await server.close()
    },
  }
}

export function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
