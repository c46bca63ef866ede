import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import Docker from 'dockerode'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApiServer } from './api/api-server.js'
import { ContainerBuilder } from './builder/container-builder.js'
import type { BlobStore } from './blobs/blob-store.js'
import { openBlobStore } from './blobs/open-blob-store.js'
import type { Config } from './config.js'
import { FairCreationQueue } from './core/admission.js'
import { randomBase32 } from './core/ids.js'
import { ensurePreviewSigningKey } from './core/preview-signing.js'
import { SandboxReaper } from './core/sandbox-reaper.js'
import { SandboxReconciler } from './core/sandbox-reconciler.js'
import { DEFAULT_SANDBOX_LIMITS } from './core/sandboxes.js'
import { MiosaError } from './core/errors.js'
import { InflightRequests } from './core/inflight.js'
import { rateLimiterFor } from './core/rate-limiter.js'
import { createServices } from './core/services.js'
import type { Services } from './core/services.js'
import { createEdgeServer } from './edge/edge-server.js'
import { platformEdgeBackend } from './edge/platform-backend.js'
import { createReleaseFiles } from './edge/release-files.js'
import { InProcessEvents } from './fleet/in-process-events.js'
import { createLogger } from './logger.js'
import { archiveChecker } from './runtime/archive-check.js'
import { DockerDriver } from './runtime/docker/docker-driver.js'
import { checkHealth } from './runtime/health-check.js'
import type { RuntimeDriver } from './runtime/runtime-driver.js'
import { MASTER_KEY_FILE, envMasterKeySource, fileMasterKeySource } from './secrets/master-key-file.js'
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

/** The one composition root: every adapter and service is wired here and nowhere else. */
export function createPlatform(config: Config, deps: { logger?: Logger } = {}): Platform {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty })
  const store = openStore(config, (error) => logger.warn({ err: error }, 'database pool: idle client error'))
  const blobs = openBlobStore({ kind: 'fs', dir: join(config.dataDir, 'blobs') })
  // Set once the store is open: every container this platform starts carries it, so
  // platforms sharing one Docker daemon never adopt or remove each other's.
  let platformId: string | undefined
  const runtime = new DockerDriver({
    docker: new Docker(),
    platformId: () => {
      if (platformId === undefined) throw new Error('the platform id is read before the platform started')
      return platformId
    },
    cacheDir: config.cacheDir,
    caBundle: config.caBundle,
    templateImages: config.templateImages,
    debianMirror: config.debianMirror,
    templatesDir: config.templatesDir,
    subnets: config.sandboxSubnets,
    warmPool: {
      size: config.sandboxWarmPool,
      maxSize: config.sandboxWarmPoolMax,
      cpu: DEFAULT_SANDBOX_LIMITS.cpu,
      memoryMb: DEFAULT_SANDBOX_LIMITS.memoryMb,
      pidsLimit: DEFAULT_SANDBOX_LIMITS.pidsLimit,
    },
    logger: logger.child({ component: 'runtime' }),
  })
  const log = logger.child({ component: 'sandboxes' })
  const builder = new ContainerBuilder({ runtime, blobs, images: runtime.images, logger: logger.child({ component: 'builder' }), spoolDir: join(config.dataDir, 'spool') })
  // Requests in flight per instance: counted by the edge, read to balance and to drain.
  const inflight = new InflightRequests()
  const services = createServices({
    builder,
    store,
    runtime,
    log,
    events: new InProcessEvents((error, event) => logger.warn({ err: error, event: event.type }, 'an event listener failed')),
    instanceDriver: runtime.instances,
    checkHealth,
    inflight,
    quotaDefaults: config.quotaDefaults,
    quotasEnabled: config.quotasEnabled,
    sandboxDisk: { limitMb: config.sandboxDiskMb, intervalMs: config.sandboxDiskIntervalMs },
    // The key sealing env values: MIOSA_MASTER_KEY, else <data-dir>/master-key (made on first start, mode 0600).
    masterKeys: config.masterKey !== undefined ? envMasterKeySource(config.masterKey) : fileMasterKeySource(join(config.dataDir, MASTER_KEY_FILE)),
    ensureImage: async (release, onLog) => {
      if (await runtime.images.has(release.sha256)) return
      // A host that never built this release (or lost its image) loads it from the blob store.
      if (release.archive_sha256 === null || release.archive_sha256 === undefined) {
        throw new MiosaError('unavailable', `the image of release ${release.sha256} is missing and it has no stored archive`)
      }
      onLog?.(`miosa: loading the release image from its OCI archive ${release.archive_sha256}`)
      const loaded = await runtime.images.load(await blobs.get(release.archive_sha256))
      if (loaded !== release.sha256) throw new MiosaError('internal', `the archive of release ${release.sha256} holds image ${loaded}`)
    },
    // Creations take turns, so a burst from one organization never stalls another's lifecycle calls.
    admission: new FairCreationQueue({ concurrency: config.sandboxCreateConcurrency, queuePerOrganization: config.sandboxCreateQueue }),
    checkArchive: archiveChecker({ spoolDir: join(config.dataDir, 'spool'), maxBytes: ARCHIVE_LIMIT_BYTES }),
    previews: {
      edgePublicUrl: config.edgePublicUrl,
      // Port 0 (tests) is known only once the edge listens.
      edgePort: () => (edge.listening ? (edge.address() as AddressInfo).port : config.edgePort),
      baseDomain: config.baseDomain,
      edgeHostname: config.edgeHostname,
      dnsServers: config.dnsServers,
    },
  })
  const reconciler = new SandboxReconciler({ store, runtime, sandboxes: services.sandboxes, log })
  const reaper = new SandboxReaper({ store, sandboxes: services.sandboxes, log, intervalMs: config.sandboxReaperIntervalMs })
  let reconcileTimer: NodeJS.Timeout | undefined
  const reconcile = () =>
    reconciler.reconcile().catch((error: unknown) => logger.warn({ err: error }, 'sandbox reconciliation failed (is the Docker daemon running?)'))
  let stopping = false
  const api = buildApiServer({
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
  const releaseFiles = createReleaseFiles({ blobs, dir: join(config.dataDir, 'releases') })
  // A release that just went live is extracted now rather than by its first visitor.
  services.deployments.onRouteChange(({ staticReleaseSha256: sha }) => {
    if (sha !== null) releaseFiles(sha).catch((error: unknown) => logger.warn({ err: error, release: sha }, 'extracting a release failed'))
  })
  const edge = createEdgeServer({
    logger: logger.child({ component: 'edge' }),
    baseDomain: config.baseDomain,
    inflight,
    hostLimiter: rateLimiterFor({ perSecond: config.edgeRateLimitRps, burst: config.edgeRateLimitBurst }),
    backend: platformEdgeBackend(services, runtime, releaseFiles),
  })

  return {
    config,
    logger,
    store,
    blobs,
    runtime,
    services,
    reconciler,
    reaper,
    api,
    edge,
    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
      await store.migrate()
      await ensurePreviewSigningKey(store)
      // A missing or malformed master key fails the start, not the first env var.
      await services.envVars.loadKeys()
      platformId = await store.settings.get(PLATFORM_ID_SETTING)
      if (platformId === undefined) {
        platformId = `plt_${randomBase32(20)}`
        await store.settings.set(PLATFORM_ID_SETTING, platformId)
      }
      // A build the last process was running when it died: its version fails with the reason, its container goes.
      await services.publish.recoverInterruptedBuilds()
      await services.publish.archiveMissing().catch((error: unknown) => logger.warn({ err: error }, 'could not look for unarchived releases'))
      await builder.cleanup().catch((error: unknown) => logger.warn({ err: error }, 'could not remove leftover builder containers (is the Docker daemon running?)'))
      const { generated } = await services.apiKeys.bootstrapRootKey(config.rootKey)
      const rootKeyFile = join(config.dataDir, 'root-key')
      if (generated !== undefined) await writeFile(rootKeyFile, `${generated}\n`, { mode: 0o600, flag: 'w' })
      // Runtime instances that survived a restart are re-adopted (not restarted) before the edge takes requests.
      await services.instances.reconcile().catch((error: unknown) => logger.warn({ err: error }, 'instance reconciliation failed (is the Docker daemon running?)'))
      await api.listen({ host: config.host, port: config.port })
      edge.listen(config.edgePort, config.host)
      await once(edge, 'listening')
      // Re-adopt what survived a restart before anything new is created, then keep converging.
      await reconcile()
      reconcileTimer = setInterval(() => void reconcile(), config.reconcileIntervalMs).unref()
      services.instances.start(config.instanceReconcileIntervalMs)
      reaper.start()
      services.sandboxDisk.start()
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
      clearInterval(reconcileTimer)
      await reaper.stop()
      await services.sandboxDisk.stop()
      // Running builds are aborted and recorded failed while the store is still open.
      await services.publish.shutdown()
      // Instances keep running: the next start re-adopts them.
      await services.instances.stop()
      // Sandboxes keep running across a restart; only pooled spares and connections go.
      await runtime.close()
      await store.close()
      logger.info('stopped')
    },
  }
}

const PLATFORM_ID_SETTING = 'platform_id'
/** Largest directory upload (tar or tar.gz) into a sandbox. */
const ARCHIVE_LIMIT_BYTES = 1024 * 1024 * 1024

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
