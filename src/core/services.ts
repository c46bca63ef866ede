import type { Builder } from '../builder/builder.js'
import type { HealthChecker, InstanceDriver } from '../runtime/instance-driver.js'
import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { ReleaseRecord, Store } from '../store/store.js'
import type { CreationAdmission } from './admission.js'
import { ApiKeyService } from './api-keys.js'
import { DeploymentService } from './deployments.js'
import { EnvVarService } from './env-vars.js'
import { EnvironmentService } from './environments.js'
import type { InflightRequests } from './inflight.js'
import type { Log } from './log.js'
import { OrganizationService } from './organizations.js'
import { InProcessEvents } from './in-process-events.js'
import type { PlatformEvents } from './platform-events.js'
import { PreviewAccess } from './preview-access.js'
import { PreviewSigner } from './preview-signing.js'
import { PreviewSites } from './preview-sites.js'
import { PreviewTokenService } from './preview-tokens.js'
import { PreviewUrls } from './preview-urls.js'
import { memoryMasterKeySource } from './secret-box.js'
import type { MasterKeySource } from './secret-box.js'
import { ProjectService } from './projects.js'
import { PublishService } from './publish.js'
import { QuotaService } from './quotas.js'
import { RouteSwitch } from './route-switch.js'
import type { QuotaLimits } from '../schemas/quotas.js'
import { DEFAULT_INSTANCE_LIMITS, RuntimeInstances } from './runtime-instances.js'
import type { DrainGate } from './instances/drain-gate.js'
import { InstanceTargets } from './instances/instance-targets.js'
import { BackgroundServices } from './background-services.js'
import { SandboxDisk } from './sandbox-disk.js'
import { SandboxOperations } from './sandbox-operations.js'
import type { ArchiveChecker } from './sandbox-operations.js'
import { SandboxService } from './sandboxes.js'
import type { SandboxDefaults } from './sandboxes.js'
import { ShareTokenService } from './share-tokens.js'
import { TemplateService } from './templates.js'
import { TenantSettingsService, dnsCnameLookup } from './tenant-settings.js'
import type { CnameLookup } from './tenant-settings.js'
import { WorkspaceService } from './workspaces.js'

/** Every domain service, wired to the same store and runtime. Adapters (API, CLI server, MCP) use only these. */
export interface Services {
  organizations: OrganizationService
  apiKeys: ApiKeyService
  workspaces: WorkspaceService
  projects: ProjectService
  /** Deployment environments per project; `ensure` checks the one a request names. */
  environments: EnvironmentService
  /** Env vars and secrets of deployment environments (sealed at rest); its `resolve` (EnvironmentValues) decrypts them for builds, instances and sandboxes. */
  envVars: EnvVarService
  sandboxes: SandboxService
  sandboxOps: SandboxOperations
  /** Measures each running sandbox's disk against the platform's limit (start() runs it periodically). */
  sandboxDisk: SandboxDisk
  /** Background services of sandboxes (`exec --background`), started again on every resume. */
  backgroundServices: BackgroundServices
  templates: TemplateService
  previewTokens: PreviewTokenService
  shareTokens: ShareTokenService
  tenant: TenantSettingsService
  /** For the edge: which sandbox port a host names, and whose branding its pages wear. */
  previewSites: PreviewSites
  /** For the edge: tokens exchanged for access cookies, and cookies checked. */
  previewAccess: PreviewAccess
  /** Deployments, their versions and routes (rollback, promote); resolveApp for the edge. */
  deployments: DeploymentService
  /** Publishing: versions built from a sandbox or an upload; build logs; recovery after a restart. */
  publish: PublishService
  /** Runtime instances of dynamic deployments: rollouts, the reconciler, targets for the edge. */
  instances: RuntimeInstances
  /** For the edge: where a dynamic app's traffic goes, read from the store's instance rows and cached until an event says otherwise. */
  instanceTargets: InstanceTargets
  /** Limits per organization and workspace, and the checks every creation passes. */
  quotas: QuotaService
  /** The one place routes move (publish, rollback, promote, environment removal); onChange for the edge. */
  routes: RouteSwitch
  /** What tells every process (edges, workers) that what it cached may be stale. */
  events: PlatformEvents
}

/** Where previews are reached, and how tenant preview domains are verified (from Config). */
export interface PreviewConfig {
  /** Config.edgePublicUrl: scheme (and port) users reach the edge at; undefined: http on edgePort. */
  edgePublicUrl: string | undefined
  /** The edge's listening port; a function when it is known only once it listens (port 0). */
  edgePort: number | (() => number)
  baseDomain: string
  /** Config.edgeHostname: what tenant preview domains must CNAME to. */
  edgeHostname: string
  /** Config.dnsServers: resolvers (ip or ip:port) for verifying them; empty: the system's. */
  dnsServers: readonly string[]
  /** Instead of DNS (tests of other parts). */
  lookupCname?: CnameLookup
}

export const DEFAULT_PREVIEW_CONFIG: PreviewConfig = {
  edgePublicUrl: undefined,
  edgePort: 8081,
  baseDomain: 'localhost',
  edgeHostname: 'edge.localhost',
  dnsServers: [],
}

export interface ServiceDeps {
  store: Store
  /** How changes reach other processes; default: this process only (InProcessEvents). */
  events?: PlatformEvents | undefined
  runtime: RuntimeDriver
  checkArchive: ArchiveChecker
  log: Log
  sandboxDefaults?: SandboxDefaults
  /** Sandbox creations take turns here (admission.ts); default: all at once. */
  admission?: CreationAdmission | undefined
  previews?: PreviewConfig
  /** Runs builds; without one, publishing answers unavailable ('no builder configured'). */
  builder?: Builder | undefined
  /** A whole build (install and build) is killed after this long; default 15 minutes. */
  buildTimeoutMs?: number | undefined
  /** Runs dynamic apps; without one, dynamic versions cannot go live. */
  instanceDriver?: InstanceDriver | undefined
  /** Makes a dynamic release's image present on this host (from its OCI archive when missing). */
  ensureImage?: ((release: ReleaseRecord, onLog?: (line: string) => void) => Promise<void>) | undefined
  /** Checks an instance's health; required with an instance driver. */
  checkHealth?: HealthChecker | undefined
  /** Requests in flight per instance address, shared with the edge. */
  inflight?: InflightRequests | undefined
  /**
   * When a draining instance may stop (core/instances/drain-gate.ts); default: `inflight`, the
   * edge of this process. A worker without an edge beside it waits for the event to reach
   * every edge and then the drain timeout (waitingDrainGate).
   */
  drainGate?: DrainGate | undefined
  /** Where the master key sealing env values lives (src/secrets/master-key-file.ts); default: a key in memory only. */
  masterKeys?: MasterKeySource | undefined
  /** Platform default limits (Config.quotaDefaults); default: DEFAULT_QUOTA_LIMITS. */
  quotaDefaults?: QuotaLimits | undefined
  /** false: no quota is checked (Config.quotasEnabled). */
  quotasEnabled?: boolean | undefined
  /** Disk per sandbox (Config.sandboxDiskMb, sandboxDiskIntervalMs); default: no limit. */
  sandboxDisk?: { limitMb: number; intervalMs: number } | undefined
}

export function createServices(deps: ServiceDeps): Services {
  const previews = deps.previews ?? DEFAULT_PREVIEW_CONFIG
  const events = deps.events ?? new InProcessEvents((error) => deps.log.warn({ err: error }, 'an event listener failed'))
  const routes = new RouteSwitch({ store: deps.store, events })
  const workspaces = new WorkspaceService(deps.store)
  const quotas = new QuotaService({ store: deps.store, defaults: deps.quotaDefaults, enabled: deps.quotasEnabled, instanceSize: DEFAULT_INSTANCE_LIMITS })
  const sandboxDisk = new SandboxDisk({ store: deps.store, runtime: deps.runtime, log: deps.log, limitMb: 0, intervalMs: 30_000, ...deps.sandboxDisk })
  const sandboxes = new SandboxService({
    disk: sandboxDisk,
    store: deps.store,
    runtime: deps.runtime,
    workspaces,
    quotas,
    log: deps.log,
    previewUrls: new PreviewUrls({ edgePublicUrl: previews.edgePublicUrl, edgePort: previews.edgePort, baseDomain: previews.baseDomain }),
    ...(deps.sandboxDefaults === undefined ? {} : { defaults: deps.sandboxDefaults }),
    admission: deps.admission,
    ensureEnvironment: async (scope, deployment, environment) => {
      await environments.ensure(scope, deployment, environment)
    },
    events,
  })
  const signer = new PreviewSigner(deps.store)
  const previewAccess = new PreviewAccess({ store: deps.store, signer })
  const previewSites = new PreviewSites({ store: deps.store, sandboxes })
  // What an edge cached about a token or a workspace's branding goes when any process changes it.
  events.subscribe((event) => {
    if (event.type === 'access.revoked') previewAccess.forget(event.tokenId)
    else if (event.type === 'tenant.changed') previewSites.forgetBranding()
  })
  const revoked = (tokenId: string) => events.publish({ type: 'access.revoked', tokenId })
  const instances = new RuntimeInstances({
    store: deps.store,
    driver: deps.instanceDriver,
    ensureImage: deps.ensureImage ?? (async () => {}),
    checkHealth: deps.checkHealth ?? (async () => ({ ok: false, reason: 'no health checker configured' })),
    inflight: deps.inflight,
    drainGate: deps.drainGate,
    events,
    log: deps.log,
    environmentValues: { resolve: (...args) => envVars.resolve(...args) },
  })
  const environments = new EnvironmentService({
    store: deps.store,
    onRoutesRemoved: (ids, environment) => routes.removed(ids, environment),
  })
  const envVars = new EnvVarService({ store: deps.store, keys: deps.masterKeys ?? memoryMasterKeySource(), environments })
  const deployments = new DeploymentService({ store: deps.store, workspaces, urls: sandboxes.previewUrls, environments, instances, quotas, routes })
  const publish = new PublishService({
    store: deps.store,
    deployments,
    routes,
    environments,
    instances,
    quotas,
    environmentValues: envVars,
    sandboxes,
    builder: deps.builder,
    log: deps.log,
    buildTimeoutMs: deps.buildTimeoutMs,
  })
  const sandboxOps = new SandboxOperations({ sandboxes, runtime: deps.runtime, checkArchive: deps.checkArchive, environmentValues: envVars, disk: sandboxDisk })
  return {
    organizations: new OrganizationService(deps.store),
    apiKeys: new ApiKeyService(deps.store),
    workspaces,
    projects: new ProjectService(deps.store),
    environments,
    envVars,
    sandboxes,
    sandboxOps,
    sandboxDisk,
    backgroundServices: new BackgroundServices({ store: deps.store, sandboxes, operations: sandboxOps, runtime: deps.runtime, log: deps.log }),
    templates: new TemplateService(deps.runtime),
    previewTokens: new PreviewTokenService({ store: deps.store, sandboxes, signer, onRevoked: revoked }),
    shareTokens: new ShareTokenService({ store: deps.store, sandboxes, onRevoked: revoked }),
    tenant: new TenantSettingsService({
      store: deps.store,
      workspaces,
      baseDomain: previews.baseDomain,
      edgeHostname: previews.edgeHostname,
      lookupCname: previews.lookupCname ?? dnsCnameLookup(previews.dnsServers),
      onChanged: (workspaceId) => events.publish({ type: 'tenant.changed', workspaceId }),
    }),
    previewSites,
    previewAccess,
    deployments,
    publish,
    instances,
    instanceTargets: new InstanceTargets({ store: deps.store, events, log: deps.log }),
    quotas,
    routes,
    events,
  }
}
