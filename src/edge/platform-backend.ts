import type { Services } from '../core/services.js'
import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { EdgeBackend } from './edge-backend.js'
import type { ReleaseFiles } from './release-files.js'

// The edge's view of the platform: the store and core services answer which sandbox port
// or published version a host names and who may see it; the runtime says where the
// sandbox listens, and releases are extracted from the blob store once. A paused sandbox
// is resumed by the request that needs it, like any exec or file operation, and its
// background services are started again; until its port answers, browsers see a page
// that waits for it.

/**
 * How long a running sandbox's address is reused without asking the store again. A state
 * change in any process drops it at once (a sandbox.changed event); the TTL bounds what a
 * lost event can leave stale, as the edge's own site cache does.
 */
const UPSTREAM_CACHE_MS = 1000
/** How long after a resume a port that does not answer is taken for a server still starting. */
const WAKING_MS = 120_000

export function platformEdgeBackend(services: Services, runtime: RuntimeDriver, releaseFiles: ReleaseFiles): EdgeBackend {
  const { sandboxes, previewSites, previewAccess, deployments } = services
  const upstreams = new Map<string, { target: { host: string; port: number }; until: number }>()
  sandboxes.onChange((sandboxId) => {
    for (const key of upstreams.keys()) if (key.startsWith(`${sandboxId}:`)) upstreams.delete(key)
  })
  // Events may have been missed (another process's change): nothing cached is trusted.
  services.events.onGap(() => upstreams.clear())
  return {
    resolve: (route) => previewSites.resolve(route),
    resolveApp: (route) => deployments.resolveApp(route),
    releaseFiles,
    appTargets: (app) => services.instanceTargets.appTargets(app),
    knownAppTargets: (app) => services.instanceTargets.knownTargets(app),
    onRouteChange: (listener) => {
      services.routes.onChange(() => listener())
      services.events.onGap(listener)
    },
    exchange: (site, token, o) => previewAccess.exchange(site, token, o),
    admits: (site, cookie) => previewAccess.admits(site, cookie),
    async upstream(site) {
      const key = `${site.sandboxId}:${site.port}`
      const cached = upstreams.get(key)
      if (cached !== undefined && cached.until > Date.now()) return cached.target
      const record = await sandboxes.ensureRunning({ organization_id: site.organizationId }, site.sandboxId)
      const target = await runtime.address(sandboxes.refOf(record), site.port)
      if (upstreams.size > 10_000) upstreams.clear()
      upstreams.set(key, { target, until: Date.now() + UPSTREAM_CACHE_MS })
      return target
    },
    waking: (sandboxId) => sandboxes.resumedWithin(sandboxId, WAKING_MS),
    touch: (sandboxId) => sandboxes.activity.touch(sandboxId),
    hold: (sandboxId) => sandboxes.activity.hold(sandboxId),
    async branding(of) {
      return (await previewSites.branding(of)) ?? undefined
    },
  }
}
