import type { Page } from '../schemas/common.js'
import type { Deployment, InstancesResult, RouteChange, RuntimeLogEvent, Version, VersionStatus } from '../schemas/deployments.js'
import { DEFAULT_ENVIRONMENT, DEFAULT_RUNTIME_SETTINGS } from '../schemas/deployments.js'
import type { HealthCheck } from '../schemas/deployments.js'
import type { DeploymentRecord, DeploymentRouteRecord, OrgScope, Store, VersionRecord } from '../store/store.js'
import { attributionOf, listQueryOf } from './attribution.js'
import type { AttributionInput, ListInput } from './attribution.js'
import type { OrganizationCaller } from './caller.js'
import { nowIso } from './clock.js'
import type { EnvironmentService } from './environments.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import type { PreviewUrls } from './preview-urls.js'
import { environmentSlugOf, insertWithSlug, slugify } from './slugs.js'
import type { RuntimeInstances } from './runtime-instances.js'
import type { RouteSwitch } from './route-switch.js'
import type { WorkspaceService } from './workspaces.js'
import type { QuotaService } from './quotas.js'

// Deployments: the stable app with its managed URL, and per environment the version it
// serves. Versions are made by publishing (publish.ts); here they are read, archived, and
// routes re-pointed at them (rollback, promote) without rebuilding anything.

export interface CreateDeployment extends AttributionInput {
  name: string
  slug?: string | undefined
  workspace_id?: string | undefined
  project_id?: string | undefined
  spa_fallback?: boolean | undefined
  instances?: number | undefined
  health_check?: Partial<HealthCheck> | undefined
  deploy_timeout_seconds?: number | undefined
  drain_timeout_seconds?: number | undefined
}

export interface UpdateDeployment {
  name?: string | undefined
  spa_fallback?: boolean | undefined
  instances?: number | undefined
  health_check?: Partial<HealthCheck> | undefined
  deploy_timeout_seconds?: number | undefined
  drain_timeout_seconds?: number | undefined
}

export interface ListDeployments extends ListInput {
  workspace_id?: string | undefined
  project_id?: string | undefined
  slug?: string | undefined
  name?: string | undefined
}

export interface ListVersions extends ListInput {
  status?: VersionStatus | undefined
  environment?: string | undefined
  version_number?: number | undefined
  include_archived?: boolean | undefined
}

export interface VersionRef {
  version_id?: string | undefined
  version_number?: number | undefined
}

export interface RouteInput extends VersionRef {
  environment?: string | undefined
}

/** The answer to a rollback or promote: the route as it is now, the version it serves, and the recorded change. */
export interface RouteChangeResult {
  deployment: Deployment
  version: Version
  change: RouteChange
}

/**
 * A published app's managed hostname: `<deployment-slug>.<workspace-slug>.<base-domain>`
 * (production), or `<deployment-slug>--<environment-slug>.<workspace-slug>.<base-domain>`.
 */
export interface AppRoute {
  deploymentSlug: string
  workspaceSlug: string
  /** The environment's slug (`preview-pr-42`); undefined for production. */
  environmentSlug?: string | undefined
}

/** What a managed hostname serves now: the active version of the environment it names. */
export interface AppSite {
  deploymentId: string
  workspaceId: string
  /** The environment whose route the host names. */
  environment: string
  versionId: string
  release: { sha256: string; kind: 'static' | 'dynamic' }
  /** Paths that match no file get index.html (single-page apps). */
  spaFallback: boolean
}

export class DeploymentService {
  constructor(
    private readonly deps: {
      store: Store
      workspaces: WorkspaceService
      urls: PreviewUrls
      /** Which environments a deployment has; publish, rollback and promote check theirs. */
      environments: EnvironmentService
      /** Dynamic versions go live through a rollout of their instances. */
      instances?: RuntimeInstances | undefined
      /** A creation past the deployments quota is refused (quota_exceeded). */
      quotas?: QuotaService | undefined
      /** Moves routes (rollback, promote) and tells every edge. */
      routes: RouteSwitch
    },
  ) {}

  // ── deployments ─────────────────────────────────────────────────────────────

  async create(organizationId: string, input: CreateDeployment): Promise<Deployment> {
    return this.toWire(await this.createRecord(organizationId, input))
  }

  async get(organizationId: string, id: string): Promise<Deployment> {
    return this.toWire(await this.record({ organization_id: organizationId }, id))
  }

  /**
   * Changes a deployment's name or settings. A new instance count or health check applies
   * within a second (the reconciler starts or drains instances); timeouts apply to the next rollout.
   */
  async update(organizationId: string, id: string, input: UpdateDeployment): Promise<Deployment> {
    const scope = { organization_id: organizationId }
    const current = await this.record(scope, id)
    const patch: Partial<DeploymentRecord> = { updated_at: nowIso() }
    if (input.name !== undefined) patch.name = input.name
    if (input.spa_fallback !== undefined) patch.spa_fallback = input.spa_fallback
    if (input.instances !== undefined) patch.instances = input.instances
    if (input.health_check !== undefined) patch.health_check = { ...current.health_check, ...input.health_check }
    if (input.deploy_timeout_seconds !== undefined) patch.deploy_timeout_seconds = input.deploy_timeout_seconds
    if (input.drain_timeout_seconds !== undefined) patch.drain_timeout_seconds = input.drain_timeout_seconds
    const write = () => this.deps.store.deployments.update(scope, id, patch)
    const more = (input.instances ?? current.instances) - current.instances
    // Scaling up adds instances in each environment serving a dynamic version: checked against vcpus and memory_mb.
    const updated = more > 0 && this.deps.quotas !== undefined
      ? await this.deps.quotas.admit(current, this.deps.quotas.instancesDemand(more * (await this.dynamicEnvironments(current))), write)
      : await write()
    if (updated === undefined) throw notFound('deployment', id)
    if (input.instances !== undefined || input.health_check !== undefined) void this.deps.instances?.reconcile().catch(() => { /* the reconciler's own loop runs again within a second and logs what fails */ })
    return this.toWire(updated)
  }

  async list(organizationId: string, input: ListDeployments): Promise<Page<Deployment>> {
    const scope = { organization_id: organizationId }
    if (input.workspace_id !== undefined && (await this.deps.store.workspaces.get(scope, input.workspace_id)) === undefined) {
      throw notFound('workspace', input.workspace_id)
    }
    if (input.project_id !== undefined && (await this.deps.store.projects.get(scope, input.project_id)) === undefined) {
      throw notFound('project', input.project_id)
    }
    const where = { workspace_id: input.workspace_id, project_id: input.project_id, slug: input.slug, name: input.name }
    const page = await this.deps.store.deployments.list(scope, listQueryOf<DeploymentRecord>(input, where))
    const slugs = new Map<string, Promise<string>>()
    return { data: await Promise.all(page.data.map((d) => this.toWire(d, slugs))), next_cursor: page.next_cursor }
  }

  /**
   * The deployment a publish by name would use, without creating it: the existing one, or
   * what would be created (id empty). For checks made before anything is written.
   */
  async findOrPlan(organizationId: string, input: CreateDeployment): Promise<Pick<DeploymentRecord, 'id' | 'slug' | 'project_id' | 'workspace_id'>> {
    const workspaceId = await this.workspaceOf(organizationId, input.workspace_id)
    const slug = input.slug ?? slugify(input.name, 'app')
    const scope = { organization_id: organizationId }
    const [existing] = await this.deps.store.deployments.find(scope, { workspace_id: workspaceId, slug }, 1)
    if (existing !== undefined) return existing
    if (input.project_id !== undefined && (await this.deps.store.projects.get(scope, input.project_id)) === undefined) throw notFound('project', input.project_id)
    return { id: '', slug, project_id: input.project_id ?? null, workspace_id: workspaceId }
  }

  /**
   * The deployment a publish by name names: found by slug (the given one, else made from
   * the name) in the workspace, or created. Two first publishes at once find one deployment.
   */
  async findOrCreate(organizationId: string, input: CreateDeployment): Promise<DeploymentRecord> {
    const scope = { organization_id: organizationId }
    const workspaceId = await this.workspaceOf(organizationId, input.workspace_id)
    const slug = input.slug ?? slugify(input.name, 'app')
    const find = async () => (await this.deps.store.deployments.find(scope, { workspace_id: workspaceId, slug }, 1))[0]
    const existing = await find()
    if (existing !== undefined) return existing
    try {
      return await this.createRecord(organizationId, { ...input, workspace_id: workspaceId, slug })
    } catch (error) {
      const raced = error instanceof MiosaError && error.code === 'conflict' ? await find() : undefined
      if (raced === undefined) throw error
      return raced
    }
  }

  async record(scope: OrgScope, id: string): Promise<DeploymentRecord> {
    const record = await this.deps.store.deployments.get(scope, id)
    if (record === undefined) throw notFound('deployment', id)
    return record
  }

  /** The managed URL of a deployment's environment (default production). */
  async urlOf(record: DeploymentRecord, slugs?: Map<string, Promise<string>>, environment: string = DEFAULT_ENVIRONMENT): Promise<string> {
    return this.deps.urls.appUrl(record.slug, await this.workspaceSlugOf(record, slugs), environment === DEFAULT_ENVIRONMENT ? undefined : environmentSlugOf(environment))
  }

  private async workspaceSlugOf(record: DeploymentRecord, slugs?: Map<string, Promise<string>>): Promise<string> {
    let slug = slugs?.get(record.workspace_id)
    if (slug === undefined) {
      slug = this.deps.store.workspaces.get({ organization_id: record.organization_id }, record.workspace_id).then((w) => {
        if (w === undefined) throw notFound('workspace', record.workspace_id)
        return w.slug
      })
      slugs?.set(record.workspace_id, slug)
    }
    return slug
  }

  /**
   * The deployment as answered: its production URL, and in `routes` every environment it has
   * (its project's, or the defaults) with its URL and active version (null where nothing is
   * published), then any route left to an environment that no longer exists (url null).
   */
  async toWire(record: DeploymentRecord, slugs?: Map<string, Promise<string>>): Promise<Deployment> {
    const scope = { organization_id: record.organization_id }
    const [workspaceSlug, routes, environments] = await Promise.all([
      this.workspaceSlugOf(record, slugs),
      this.deps.store.deploymentRoutes.list(scope, record.id),
      this.deps.environments.ofDeployment(scope, record),
    ])
    const byName = new Map<string, DeploymentRouteRecord>(routes.map((r) => [r.environment, r]))
    const urlIn = (name: string) => this.deps.urls.appUrl(record.slug, workspaceSlug, name === DEFAULT_ENVIRONMENT ? undefined : environmentSlugOf(name))
    const known = new Set(environments.map((e) => e.name))
    return {
      ...record,
      url: urlIn(DEFAULT_ENVIRONMENT),
      active_version_id: byName.get(DEFAULT_ENVIRONMENT)?.active_version_id ?? null,
      routes: [
        ...environments.map(({ name }) => ({
          environment: name,
          url: urlIn(name),
          active_version_id: byName.get(name)?.active_version_id ?? null,
          updated_at: byName.get(name)?.updated_at ?? null,
        })),
        ...routes
          .filter((r) => !known.has(r.environment))
          .map(({ environment, active_version_id, updated_at }) => ({ environment, url: null, active_version_id, updated_at })),
      ],
    }
  }

  // ── versions ────────────────────────────────────────────────────────────────

  async listVersions(organizationId: string, deploymentId: string, input: ListVersions): Promise<Page<Version>> {
    const scope = { organization_id: organizationId }
    const deployment = await this.record(scope, deploymentId)
    const where = { deployment_id: deployment.id, status: input.status, environment: input.environment, version_number: input.version_number }
    const page = await this.deps.store.versions.list(scope, listQueryOf<VersionRecord>(input, where))
    // Archived versions are listed only when asked for (by status, or include_archived).
    const showArchived = input.status !== undefined || input.include_archived === true
    const shown = showArchived ? page.data : page.data.filter((v) => v.status !== 'archived')
    // Versions made in the same millisecond still read newest first.
    const data = shown.toSorted((a, b) => b.version_number - a.version_number)
    const slugs = new Map<string, Promise<string>>()
    const wire = await Promise.all(data.map(async (v) => versionWire(v, await this.urlOf(deployment, slugs, v.environment))))
    return { data: wire, next_cursor: page.next_cursor }
  }

  async getVersion(organizationId: string, id: string): Promise<Version> {
    const record = await this.versionRecord({ organization_id: organizationId }, id)
    return this.versionToWire(record)
  }

  async versionRecord(scope: OrgScope, id: string): Promise<VersionRecord> {
    const record = await this.deps.store.versions.get(scope, id)
    if (record === undefined) throw notFound('version', id)
    return record
  }

  async versionToWire(record: VersionRecord): Promise<Version> {
    const deployment = await this.record({ organization_id: record.organization_id }, record.deployment_id)
    return versionWire(record, await this.urlOf(deployment, undefined, record.environment))
  }

  /**
   * Hides a version from the default list. Its release is kept (it stays bootable); the
   * version an environment serves, and one still building, cannot be archived.
   */
  async archive(organizationId: string, id: string): Promise<Version> {
    const scope = { organization_id: organizationId }
    const version = await this.versionRecord(scope, id)
    if (version.status === 'archived') return this.versionToWire(version)
    if (version.status === 'building') {
      throw new MiosaError('conflict', `version ${version.version_number} (${id}) is still building: archive it once it has ended`, {
        details: { status: version.status },
      })
    }
    const routes = await this.deps.store.deploymentRoutes.list(scope, version.deployment_id)
    const serving = routes.filter((r) => r.active_version_id === id).map((r) => r.environment)
    if (serving.length > 0) {
      throw new MiosaError('conflict', `version ${version.version_number} (${id}) is active in ${serving.join(', ')}: roll back or promote another version first`, {
        details: { environments: serving },
      })
    }
    const archived = await this.deps.store.versions.update(scope, id, { status: 'archived', updated_at: nowIso() })
    if (archived === undefined) throw notFound('version', id)
    return this.versionToWire(archived)
  }

  // ── routes ──────────────────────────────────────────────────────────────────

  /** Points an environment (default production) back at an earlier ready version. Nothing is rebuilt. */
  rollback(organizationId: string, caller: OrganizationCaller, deploymentId: string, input: RouteInput): Promise<RouteChangeResult> {
    return this.repoint(organizationId, caller, deploymentId, input, 'rollback')
  }

  /** Points an environment at a ready version (built for any environment of the deployment). Nothing is rebuilt. */
  promote(organizationId: string, caller: OrganizationCaller, deploymentId: string, input: RouteInput): Promise<RouteChangeResult> {
    return this.repoint(organizationId, caller, deploymentId, input, 'promote')
  }

  async routeHistory(organizationId: string, deploymentId: string, input: ListInput & { environment?: string | undefined }): Promise<Page<RouteChange>> {
    const scope = { organization_id: organizationId }
    await this.record(scope, deploymentId)
    return this.deps.store.routeChanges.list(scope, { limit: input.limit, cursor: input.cursor, where: { deployment_id: deploymentId, environment: input.environment } })
  }

  private async repoint(
    organizationId: string,
    caller: OrganizationCaller,
    deploymentId: string,
    input: RouteInput,
    reason: 'rollback' | 'promote',
  ): Promise<RouteChangeResult> {
    const scope = { organization_id: organizationId }
    const deployment = await this.record(scope, deploymentId)
    const environment = input.environment ?? DEFAULT_ENVIRONMENT
    // An environment the deployment does not have is a 4xx before anything moves.
    await this.deps.environments.ensure(scope, deployment, environment)
    const version = await this.versionOf(scope, deployment, input)
    if (version.status !== 'ready') {
      throw new MiosaError('conflict', `version ${version.version_number} (${version.id}) is ${version.status}: only a ready version can be served`, {
        details: { field: input.version_id === undefined ? 'version_number' : 'version_id', status: version.status },
      })
    }
    let change: RouteChange | undefined
    const flip = async () => {
      // Every edge drops its cached route now, before the old instances start draining.
      change = await this.deps.routes.repoint(
        scope,
        { id: newId('routeChange'), organization_id: organizationId, deployment_id: deployment.id, environment, to_version_id: version.id, reason, actor: caller.api_key_id, created_at: nowIso() },
        { staticReleaseSha256: version.release_kind === 'static' ? version.release_sha256 : null },
      )
      return change !== undefined
    }
    // A dynamic version's instances start and get healthy before the route moves (its image is there already: no rebuild).
    if (version.release_kind === 'dynamic') await this.instances().rollout({ deployment, environment, version, runReleaseCommand: false, flip })
    else await flip()
    if (change === undefined) throw new MiosaError('internal', 'the route change was not recorded')
    const wire = await this.toWire(await this.record(scope, deployment.id))
    return { deployment: wire, version: versionWire(version, await this.urlOf(deployment, undefined, version.environment)), change }
  }

  private async versionOf(scope: OrgScope, deployment: DeploymentRecord, ref: VersionRef): Promise<VersionRecord> {
    if (ref.version_id !== undefined) {
      const version = await this.deps.store.versions.get(scope, ref.version_id)
      if (version === undefined || version.deployment_id !== deployment.id) throw notFound('version', ref.version_id)
      return version
    }
    if (ref.version_number !== undefined) {
      const [version] = await this.deps.store.versions.find(scope, { deployment_id: deployment.id, version_number: ref.version_number }, 1)
      if (version === undefined) throw notFound('version', `${deployment.slug}#${ref.version_number}`)
      return version
    }
    throw new MiosaError('invalid', 'version_id: give exactly one of version_id and version_number', { details: { field: 'version_id' } })
  }

  // ── runtime instances ───────────────────────────────────────────────────────

  async instancesOf(organizationId: string, deploymentId: string, environment: string, events: number): Promise<InstancesResult> {
    const deployment = await this.record({ organization_id: organizationId }, deploymentId)
    return this.instances().list(deployment, environment, events)
  }

  /** New instances of the active version replace the running ones, the zero-downtime way. */
  async restart(organizationId: string, deploymentId: string, environment: string): Promise<InstancesResult> {
    const deployment = await this.record({ organization_id: organizationId }, deploymentId)
    await this.deps.environments.ensure({ organization_id: organizationId }, deployment, environment)
    await this.instances().restart(deployment, environment)
    return this.instances().list(deployment, environment, 20)
  }

  async runtimeLogs(
    organizationId: string,
    deploymentId: string,
    o: { environment: string; tail: number; follow: boolean; signal?: AbortSignal | undefined },
  ): Promise<AsyncIterable<RuntimeLogEvent>> {
    const deployment = await this.record({ organization_id: organizationId }, deploymentId)
    return this.instances().logs(deployment, o.environment, o)
  }

  private instances(): RuntimeInstances {
    if (this.deps.instances === undefined) throw new MiosaError('unavailable', 'no runtime for dynamic apps is configured')
    return this.deps.instances
  }

  // ── the edge ────────────────────────────────────────────────────────────────

  /**
   * The app a managed hostname names, from the route of its environment (production when the
   * host names none); undefined when unknown, the environment does not exist, or nothing is published there yet.
   */
  async resolveApp(route: AppRoute): Promise<AppSite | undefined> {
    const deployment = await this.deps.store.deployments.findByHost(route.workspaceSlug, route.deploymentSlug)
    if (deployment === undefined) return undefined
    let environment = DEFAULT_ENVIRONMENT
    if (route.environmentSlug !== undefined) {
      const found = await this.deps.environments.bySlugUnscoped(deployment, route.environmentSlug)
      // production is reached at the plain hostname only: one URL per environment.
      if (found === undefined || found.name === DEFAULT_ENVIRONMENT) return undefined
      environment = found.name
    }
    const active = await this.deps.store.deploymentRoutes.findUnscoped(deployment.id, environment)
    if (active === undefined || active.active_version_id === null) return undefined
    const version = await this.deps.store.versions.findById(active.active_version_id)
    if (version === undefined || version.release_sha256 === null || version.release_kind === null) return undefined
    return {
      deploymentId: deployment.id,
      workspaceId: deployment.workspace_id,
      environment,
      versionId: version.id,
      release: { sha256: version.release_sha256, kind: version.release_kind },
      spaFallback: version.plan?.spa_fallback ?? deployment.spa_fallback,
    }
  }

  // ── helpers ─────────────────────────────────────────────────────────────────

  private async createRecord(organizationId: string, input: CreateDeployment): Promise<DeploymentRecord> {
    const scope = { organization_id: organizationId }
    const workspaceId = await this.workspaceOf(organizationId, input.workspace_id)
    if (input.project_id !== undefined) {
      const project = await this.deps.store.projects.get(scope, input.project_id)
      if (project === undefined) throw notFound('project', input.project_id)
      if (project.workspace_id !== workspaceId) {
        throw new MiosaError('invalid', `project_id: project ${project.id} is in another workspace`, { details: { field: 'project_id' } })
      }
    }
    const now = nowIso()
    const base = {
      id: newId('deployment'),
      organization_id: organizationId,
      workspace_id: workspaceId,
      project_id: input.project_id ?? null,
      name: input.name,
      spa_fallback: input.spa_fallback ?? false,
      instances: input.instances ?? DEFAULT_RUNTIME_SETTINGS.instances,
      health_check: { ...DEFAULT_RUNTIME_SETTINGS.health_check, ...input.health_check },
      deploy_timeout_seconds: input.deploy_timeout_seconds ?? DEFAULT_RUNTIME_SETTINGS.deploy_timeout_seconds,
      drain_timeout_seconds: input.drain_timeout_seconds ?? DEFAULT_RUNTIME_SETTINGS.drain_timeout_seconds,
      ...attributionOf(input),
      created_at: now,
      updated_at: now,
    }
    const insert = () => insertWithSlug(input.slug, slugify(input.name, 'app'), (slug) => this.deps.store.deployments.insert({ ...base, slug }))
    return this.deps.quotas === undefined ? insert() : this.deps.quotas.admit(base, { deployments: 1 }, insert)
  }

  /** How many of the deployment's environments serve a dynamic version (each runs its instances). */
  private async dynamicEnvironments(deployment: DeploymentRecord): Promise<number> {
    const scope = { organization_id: deployment.organization_id }
    const routes = (await this.deps.store.deploymentRoutes.list(scope, deployment.id)).filter((r) => r.active_version_id !== null)
    const versions = await Promise.all(routes.map((r) => this.deps.store.versions.get(scope, r.active_version_id as string)))
    return versions.filter((v) => v?.release_kind === 'dynamic').length
  }

  private async workspaceOf(organizationId: string, workspaceId: string | undefined): Promise<string> {
    if (workspaceId === undefined) return this.deps.workspaces.defaultId(organizationId)
    if ((await this.deps.store.workspaces.get({ organization_id: organizationId }, workspaceId)) === undefined) {
      throw notFound('workspace', workspaceId)
    }
    return workspaceId
  }
}

export function versionWire(record: VersionRecord, url: string): Version {
  const { logs: _logs, ...rest } = record
  return { ...rest, url }
}
