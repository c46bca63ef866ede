import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { rateLimiterFor } from '../core/rate-limiter.js'
import { createEdgeServer } from '../edge/edge-server.js'
import { platformEdgeBackend } from '../edge/platform-backend.js'
import { createReleaseFiles } from '../edge/release-files.js'
import type { Foundation } from './foundation.js'

// The edge: previews of sandboxes and published apps, by Host header. It keeps nothing
// another process needs: routes and instance targets are read from the store and cached
// until an event says they changed, and sandbox activity is written to the store.

export interface EdgeRole {
  readonly server: Server
  start(): Promise<{ edgeUrl: string }>
  /** Stops listening; in-flight requests finish (the caller bounds how long). */
  stop(): Promise<void>
}

export function createEdge(f: Foundation): EdgeRole {
  const { config, logger, blobs, services, runtime } = f
  const releaseFiles = createReleaseFiles({ blobs, dir: join(config.dataDir, 'releases') })
  // A release that just went live is extracted now rather than by its first visitor.
  services.routes.onChange(({ staticReleaseSha256: sha }) => {
    if (sha !== null) releaseFiles(sha).catch((error: unknown) => logger.warn({ err: error, release: sha }, 'extracting a release failed'))
  })
  const server = createEdgeServer({
    logger: logger.child({ component: 'edge' }),
    baseDomain: config.baseDomain,
    inflight: services.instances.inflight,
    hostLimiter: rateLimiterFor({ perSecond: config.edgeRateLimitRps, burst: config.edgeRateLimitBurst }),
    backend: platformEdgeBackend(services, runtime, releaseFiles),
  })
  // Preview URLs carry the port the edge really listens on (port 0 in tests).
  f.useEdgePort(() => (server.listening ? (server.address() as AddressInfo).port : config.edgePort))
  return {
    server,
    async start() {
      server.listen(config.edgePort, config.host)
      await once(server, 'listening')
      return { edgeUrl: `http://${config.baseDomain}:${(server.address() as AddressInfo).port}` }
    },
    async stop() {
      if (!server.listening) return
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
