import { join } from 'node:path'
import Docker from 'dockerode'
import type { Logger } from 'pino'
import { ContainerBuilder } from '../builder/container-builder.js'
import type { BlobStore } from '../blobs/blob-store.js'
import { openBlobStore } from '../blobs/open-blob-store.js'
import type { Config } from '../config.js'
import { FairCreationQueue } from '../core/admission.js'
import { MiosaError } from '../core/errors.js'
import { InflightRequests } from '../core/inflight.js'
import { fleetDrainGate, inflightDrainGate } from '../core/instances/drain-gate.js'
import { randomBase32 } from '../core/ids.js'
import type { PlatformEvents } from '../core/platform-events.js'
import { ensurePreviewSigningKey } from '../core/preview-signing.js'
import { DEFAULT_SANDBOX_LIMITS } from '../core/sandboxes.js'
import { createServices } from '../core/services.js'
import type { Services } from '../core/services.js'
import { eventsFor } from '../fleet/open-events.js'
import { createLogger } from '../logger.js'
import { archiveChecker } from '../runtime/archive-check.js'
import { DockerDriver } from '../runtime/docker/docker-driver.js'
import { checkHealth } from '../runtime/health-check.js'
import { WorkspaceNetworks } from '../runtime/docker/workspace-networks.js'
import { SwarmInstances, requireSwarmManager } from '../runtime/swarm/swarm-instances.js'
import { MASTER_KEY_FILE, envMasterKeySource, fileMasterKeySource } from '../secrets/master-key-file.js'
import { openStore } from '../store/open-store.js'
import type { Store } from '../store/store.js'

// What every role stands on: the store, the blob store, the events between processes, the
// runtime and the domain services over them. Each role (api, edge, worker) takes what it
// needs from here and adds its own listeners and loops; `all` takes all three.

export type Role = 'all' | 'api' | 'edge' | 'worker'
export const ROLES: readonly Role[] = ['all', 'api', 'edge', 'worker']

export interface Foundation {
  readonly config: Config
  readonly role: Role
  readonly logger: Logger
  readonly store: Store
  readonly blobs: BlobStore
  readonly events: PlatformEvents
  readonly runtime: DockerDriver
  readonly builder: ContainerBuilder
  readonly services: Services
  /** Where preview URLs take their port from once the edge listens (port 0 in tests); default the configured one. */
  useEdgePort(read: () => number): void
  /** Opens what the roles share: migrations, the preview signing key, the platform id, and (unless `sealing` is false: an edge never opens a secret) the master key. */
  prepare(o?: { sealing?: boolean }): Promise<void>
  /** Closes what prepare opened and the runtime's connections (sandboxes and instances keep running). */
  close(): Promise<void>
}

const PLATFORM_ID_SETTING = 'platform_id'
/** How long a change takes to reach every edge of a fleet at worst: an edge's cache TTL (1 s) and a margin. */
const FLEET_PROPAGATION_MS = 1500
/** Largest directory upload (tar or tar.gz) into a sandbox. */
const ARCHIVE_LIMIT_BYTES = 1024 * 1024 * 1024

export function createFoundation(config: Config, role: Role, deps: { logger?: Logger | undefined } = {}): Foundation {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty })
  const store = openStore(config, (error) => logger.warn({ err: error }, 'database pool: idle client error'))
  const blobs = openBlobStore({ kind: 'fs', dir: join(config.dataDir, 'blobs') })
  const { events, fleet, open: openEvents } = eventsFor(config.databaseUrl, logger.child({ component: 'events' }))
  // Requests in flight per instance, counted by this process's edge; other edges of a fleet count their own.
  const inflight = new InflightRequests()
  // Set once the store is open: every container this platform starts carries it, so
  // platforms sharing one Docker daemon never adopt or remove each other's.
  let platformId: string | undefined
  const currentPlatformId = () => {
    if (platformId === undefined) throw new Error('the platform id is read before the platform started')
    return platformId
  }
  const docker = new Docker()
  const runtime = new DockerDriver({
    docker,
    platformId: currentPlatformId,
    cacheDir: config.cacheDir,
    caBundle: config.caBundle,
    templateImages: config.templateImages,
    debianMirror: config.debianMirror,
    templatesDir: config.templatesDir,
    subnets: config.sandboxSubnets,
    warmPool: {
      // Spares are the worker's business: an edge or api process keeps none.
      size: role === 'all' || role === 'worker' ? config.sandboxWarmPool : 0,
      maxSize: config.sandboxWarmPoolMax,
      cpu: DEFAULT_SANDBOX_LIMITS.cpu,
      memoryMb: DEFAULT_SANDBOX_LIMITS.memoryMb,
      pidsLimit: DEFAULT_SANDBOX_LIMITS.pidsLimit,
    },
    logger: logger.child({ component: 'runtime' }),
  })
  // --runtime swarm: runtime instances as Swarm services; sandboxes and builds stay on plain Docker.
  const instanceDriver =
    config.runtime === 'swarm'
      ? new SwarmInstances({
          docker,
          platformId: currentPlatformId,
          caBundle: config.caBundle,
          networks: new WorkspaceNetworks(docker, currentPlatformId, config.sandboxSubnets, logger.child({ component: 'runtime' }), 'swarm'),
          logger: logger.child({ component: 'runtime' }),
        })
      : runtime.instances
  const builder = new ContainerBuilder({ runtime, blobs, images: runtime.images, logger: logger.child({ component: 'builder' }), spoolDir: join(config.dataDir, 'spool') })
  let edgePort: () => number = () => config.edgePort
  const services = createServices({
    builder,
    store,
    events,
    runtime,
    log: logger.child({ component: 'sandboxes' }),
    instanceDriver,
    checkHealth,
    inflight,
    // Other processes' edges may still send a draining instance requests until the event reaches them.
    drainGate: fleet ? fleetDrainGate(inflight, FLEET_PROPAGATION_MS) : inflightDrainGate(inflight),
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
      edgePort: () => edgePort(),
      baseDomain: config.baseDomain,
      edgeHostname: config.edgeHostname,
      dnsServers: config.dnsServers,
    },
  })

  return {
    config,
    role,
    logger,
    store,
    blobs,
    events,
    runtime,
    builder,
    services,
    useEdgePort(read) {
      edgePort = read
    },
    async prepare(o = {}) {
      if (config.runtime === 'swarm') await requireSwarmManager(docker)
      await store.migrate()
      // Before anything can change: what this process publishes must reach the others.
      await openEvents()
      await ensurePreviewSigningKey(store)
      // A missing or malformed master key fails the start, not the first env var.
      if (o.sealing !== false) await services.envVars.loadKeys()
      // The first process of a fleet to start names the platform; every other one reads it.
      platformId = await store.settings.setIfAbsent(PLATFORM_ID_SETTING, `plt_${randomBase32(20)}`)
    },
    async close() {
      // Sandboxes keep running across a restart; only pooled spares and connections go.
      await runtime.close()
      await events.close()
      await store.close()
    },
  }
}
