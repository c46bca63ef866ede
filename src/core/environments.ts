import type { Environment } from '../schemas/environments.js'
import type { DeploymentRecord, EnvironmentRecord, OrgScope, Store } from '../store/store.js'
import { nowIso } from './clock.js'
import { DEFAULT_ENVIRONMENTS, ENVIRONMENT_NAME_RULE, PRODUCTION, environmentSlugOf, isEnvironmentName } from './slugs.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'

export { DEFAULT_ENVIRONMENTS, PRODUCTION, STAGING, environmentSlugOf, isEnvironmentName } from './slugs.js'

// Deployment environments: per project, `production` and `staging` from its creation (in
// the transaction that creates the project), and any others created and deleted at will. A
// deployment outside a project has the defaults only. Every publish, rollback and promote
// asks `ensure` first, so an unknown environment is a clear 4xx before anything is written.
//
// Deleting an environment removes its route in every deployment of the project: what it
// served stops being served at once (the edge drops its cached route), and the runtime
// instance reconciler drains the instances of routes that are gone. Versions published to
// it stay (and can be promoted elsewhere); its route history stays.

/** An environment a deployment may use: its name and slug; `id` null for the defaults of a deployment outside any project. */
export interface EnvironmentRef {
  id: string | null
  name: string
  slug: string
}

/** What a deployment needs to be checked: which project it is in (if any). */
export type DeploymentLike = Pick<DeploymentRecord, 'id' | 'slug' | 'project_id'>

export class EnvironmentService {
  constructor(
    private readonly deps: {
      store: Store
      /** Says routes were removed (every edge drops its cached routes): RouteSwitch.removed. */
      onRoutesRemoved?: ((deploymentIds: readonly string[], environment: string) => Promise<void>) | undefined
    },
  ) {}

  /**
   * The environment a publish, rollback, promote, env var or sandbox names, for this
   * deployment: one indexed lookup in a project, none outside one. Throws
   * MiosaError('invalid') for a malformed name or a non-default name outside a project,
   * MiosaError('not_found') for a name the project does not have, each saying how to fix it.
   */
  async ensure(scope: OrgScope, deployment: DeploymentLike, environment: string): Promise<EnvironmentRef> {
    if (!isEnvironmentName(environment)) {
      throw new MiosaError('invalid', `environment: "${environment}" is not an environment name: use ${ENVIRONMENT_NAME_RULE}`, {
        details: { field: 'environment' },
      })
    }
    if (deployment.project_id === null) {
      if ((DEFAULT_ENVIRONMENTS as readonly string[]).includes(environment)) return { id: null, name: environment, slug: environmentSlugOf(environment) }
      throw new MiosaError(
        'invalid',
        `environment: deployment ${deployment.slug} is in no project, so it has only the environments ${DEFAULT_ENVIRONMENTS.join(' and ')}; ` +
          `to use "${environment}", create the deployment in a project and create the environment there (miosa environments create <project> ${environment})`,
        { details: { field: 'environment', environment, environments: [...DEFAULT_ENVIRONMENTS] } },
      )
    }
    const [found] = await this.deps.store.environments.find(scope, { project_id: deployment.project_id, name: environment }, 1)
    if (found === undefined) {
      throw new MiosaError(
        'not_found',
        `environment "${environment}" does not exist in project ${deployment.project_id}: create it first ` +
          `(miosa environments create ${deployment.project_id} ${environment}, or POST /api/v1/projects/${deployment.project_id}/environments)`,
        { details: { kind: 'environment', id: environment, field: 'environment', project_id: deployment.project_id } },
      )
    }
    return { id: found.id, name: found.name, slug: found.slug }
  }

  /** The environments a deployment has: its project's (production first), or the defaults. */
  async ofDeployment(scope: OrgScope, deployment: DeploymentLike): Promise<EnvironmentRef[]> {
    if (deployment.project_id === null) return DEFAULT_ENVIRONMENTS.map((name) => ({ id: null, name, slug: environmentSlugOf(name) }))
    const rows = await this.deps.store.environments.find(scope, { project_id: deployment.project_id })
    return sortEnvironments(rows).map(({ id, name, slug }) => ({ id, name, slug }))
  }

  /** The environment a managed hostname's slug names, across organizations: for the edge. Undefined when there is none. */
  async bySlugUnscoped(deployment: Pick<DeploymentRecord, 'project_id'>, slug: string): Promise<EnvironmentRef | undefined> {
    if (deployment.project_id === null) {
      const name = DEFAULT_ENVIRONMENTS.find((n) => environmentSlugOf(n) === slug)
      return name === undefined ? undefined : { id: null, name, slug }
    }
    const found = await this.deps.store.environments.findBySlugUnscoped(deployment.project_id, slug)
    return found === undefined ? undefined : { id: found.id, name: found.name, slug: found.slug }
  }

  // ── per project (the API) ───────────────────────────────────────────────────

  /** A project's environments, production first, then by name. */
  async list(organizationId: string, projectId: string): Promise<Environment[]> {
    const scope = { organization_id: organizationId }
    await this.project(scope, projectId)
    return sortEnvironments(await this.deps.store.environments.find(scope, { project_id: projectId }))
  }

  async create(organizationId: string, projectId: string, input: { name: string }): Promise<Environment> {
    const scope = { organization_id: organizationId }
    await this.project(scope, projectId)
    const name = input.name
    if (!isEnvironmentName(name)) {
      throw new MiosaError('invalid', `name: "${name}" is not an environment name: use ${ENVIRONMENT_NAME_RULE}`, { details: { field: 'name' } })
    }
    const slug = environmentSlugOf(name)
    const [clash] = await this.deps.store.environments.find(scope, { project_id: projectId, slug }, 1)
    if (clash !== undefined) throw clashOf(projectId, name, clash)
    try {
      return await this.deps.store.environments.insert(record(organizationId, projectId, name, nowIso()))
    } catch (error) {
      // Two creates at once: the unique constraints decide.
      if (error instanceof MiosaError && error.code === 'conflict') {
        const [raced] = await this.deps.store.environments.find(scope, { project_id: projectId, slug }, 1)
        if (raced !== undefined) throw clashOf(projectId, name, raced)
      }
      throw error
    }
  }

  /**
   * Deletes the environment and its route in every deployment of the project, in one
   * transaction: what it served stops being served (instances are drained by the
   * reconciler). `production` cannot be deleted. Answers how many routes were removed.
   */
  async delete(organizationId: string, projectId: string, name: string): Promise<{ routes_removed: number }> {
    const scope = { organization_id: organizationId }
    await this.project(scope, projectId)
    if (name === PRODUCTION) {
      throw new MiosaError('conflict', `environment ${PRODUCTION} cannot be deleted: every project keeps it`, { details: { field: 'name', environment: name } })
    }
    const [found] = await this.deps.store.environments.find(scope, { project_id: projectId, name }, 1)
    if (found === undefined) throw notFound('environment', `${name} (project ${projectId})`)
    const removed = await this.deps.store.transaction(async (tx) => {
      const routes = await tx.deploymentRoutes.deleteForEnvironment(scope, projectId, name)
      // Its env vars and secrets go too: an environment made again later under the same name starts empty.
      for (const deployment of await tx.deployments.find(scope, { project_id: projectId })) await tx.envVars.deleteAll(scope, deployment.id, name)
      await tx.environments.delete(scope, found.id)
      return routes
    })
    if (removed > 0 && this.deps.onRoutesRemoved !== undefined) {
      const deployments = await this.deps.store.deployments.find(scope, { project_id: projectId })
      await this.deps.onRoutesRemoved(deployments.map((d) => d.id), name)
    }
    return { routes_removed: removed }
  }

  /** Inserts a new project's default environments (call inside the transaction that inserts the project). */
  static async createDefaults(tx: Store, organizationId: string, projectId: string, createdAt: string): Promise<void> {
    for (const name of DEFAULT_ENVIRONMENTS) await tx.environments.insert(record(organizationId, projectId, name, createdAt))
  }

  private async project(scope: OrgScope, projectId: string): Promise<void> {
    if ((await this.deps.store.projects.get(scope, projectId)) === undefined) throw notFound('project', projectId)
  }
}

function record(organizationId: string, projectId: string, name: string, createdAt: string): EnvironmentRecord {
  return { id: newId('environment'), organization_id: organizationId, project_id: projectId, name, slug: environmentSlugOf(name), created_at: createdAt }
}

function clashOf(projectId: string, name: string, existing: EnvironmentRecord): MiosaError {
  if (existing.name === name) {
    return new MiosaError('conflict', `environment "${name}" already exists in project ${projectId}`, { details: { field: 'name' } })
  }
  return new MiosaError('conflict', `environment "${name}" would have the URL slug "${existing.slug}" of environment "${existing.name}" in project ${projectId}: choose another name`, {
    details: { field: 'name', slug: existing.slug, environment: existing.name },
  })
}

/** Production first, staging next, then the rest by name. */
function sortEnvironments<T extends { name: string }>(rows: T[]): T[] {
  const rank = (name: string) => {
    const i = (DEFAULT_ENVIRONMENTS as readonly string[]).indexOf(name)
    return i === -1 ? DEFAULT_ENVIRONMENTS.length : i
  }
  return rows.toSorted((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}
