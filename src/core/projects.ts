import type { Store } from '../store/store.js'
import type { Project } from '../schemas/projects.js'
import type { Page } from '../schemas/common.js'
import { attributionOf, attributionPatchOf, listQueryOf } from './attribution.js'
import type { AttributionInput, AttributionPatchInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { EnvironmentService } from './environments.js'
import { notFound } from './errors.js'
import { newId } from './ids.js'
import { insertWithSlug, slugify } from './slugs.js'

export interface CreateProject extends AttributionInput {
  workspace_id: string
  name: string
  slug?: string | undefined
}

export interface UpdateProject extends AttributionPatchInput {
  name?: string | undefined
}

/** Projects: the apps, sites and workflows inside a workspace. Slugs are unique per workspace. */
export class ProjectService {
  constructor(private readonly store: Store) {}

  async create(organizationId: string, input: CreateProject): Promise<Project> {
    const scope = { organization_id: organizationId }
    if ((await this.store.workspaces.get(scope, input.workspace_id)) === undefined) {
      throw notFound('workspace', input.workspace_id)
    }
    const now = nowIso()
    const base = {
      id: newId('project'),
      organization_id: organizationId,
      workspace_id: input.workspace_id,
      name: input.name,
      ...attributionOf(input),
      created_at: now,
      updated_at: now,
    }
    // The project and its default environments (production, staging) land together or not at all.
    return insertWithSlug(input.slug, slugify(input.name, 'project'), (slug) =>
      this.store.transaction(async (tx) => {
        const project = await tx.projects.insert({ ...base, slug })
        await EnvironmentService.createDefaults(tx, organizationId, project.id, now)
        return project
      }),
    )
  }

  async get(organizationId: string, id: string): Promise<Project> {
    const project = await this.store.projects.get({ organization_id: organizationId }, id)
    if (project === undefined) throw notFound('project', id)
    return project
  }

  /** Lists the organization's projects; a workspace_id filter must name one of its workspaces. */
  async list(organizationId: string, input: ListInput & { workspace_id?: string | undefined }): Promise<Page<Project>> {
    const scope = { organization_id: organizationId }
    if (input.workspace_id !== undefined && (await this.store.workspaces.get(scope, input.workspace_id)) === undefined) {
      throw notFound('workspace', input.workspace_id)
    }
    return this.store.projects.list(scope, listQueryOf<Project>(input, { workspace_id: input.workspace_id }))
  }

  async update(organizationId: string, id: string, input: UpdateProject): Promise<Project> {
    const patch = { ...attributionPatchOf(input), ...(input.name === undefined ? {} : { name: input.name }) }
    const updated = await this.store.projects.update({ organization_id: organizationId }, id, {
      ...patch,
      updated_at: nowIso(),
    })
    if (updated === undefined) throw notFound('project', id)
    return updated
  }

  /** Deletes the project with its environments (a project that still has deployments is a 409). */
  async delete(organizationId: string, id: string): Promise<void> {
    const scope = { organization_id: organizationId }
    const deleted = await this.store.transaction(async (tx) => {
      await tx.environments.deleteByProject(scope, id)
      return tx.projects.delete(scope, id)
    })
    if (!deleted) throw notFound('project', id)
  }
}
