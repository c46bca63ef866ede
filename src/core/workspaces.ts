import type { Store } from '../store/store.js'
import type { Workspace } from '../schemas/workspaces.js'
import type { Page } from '../schemas/common.js'
import { attributionOf, attributionPatchOf, listQueryOf } from './attribution.js'
import type { AttributionInput, AttributionPatchInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import { insertWithSlug, slugify } from './slugs.js'

export interface CreateWorkspace extends AttributionInput {
  name: string
  slug?: string | undefined
}

export interface UpdateWorkspace extends AttributionPatchInput {
  name?: string | undefined
}

/** Workspaces: one per downstream customer. Their slug is part of every managed URL, so it is unique platform-wide. */
export class WorkspaceService {
  constructor(private readonly store: Store) {}

  async create(organizationId: string, input: CreateWorkspace): Promise<Workspace> {
    const now = nowIso()
    const base = {
      id: newId('workspace'),
      organization_id: organizationId,
      name: input.name,
      ...attributionOf(input),
      created_at: now,
      updated_at: now,
    }
    return insertWithSlug(input.slug, slugify(input.name, 'workspace'), (slug) =>
      this.store.workspaces.insert({ ...base, slug }),
    )
  }

  async get(organizationId: string, id: string): Promise<Workspace> {
    const workspace = await this.store.workspaces.get({ organization_id: organizationId }, id)
    if (workspace === undefined) throw notFound('workspace', id)
    return workspace
  }

  list(organizationId: string, input: ListInput): Promise<Page<Workspace>> {
    return this.store.workspaces.list({ organization_id: organizationId }, listQueryOf<Workspace>(input))
  }

  async update(organizationId: string, id: string, input: UpdateWorkspace): Promise<Workspace> {
    const patch = { ...attributionPatchOf(input), ...(input.name === undefined ? {} : { name: input.name }) }
    const updated = await this.store.workspaces.update({ organization_id: organizationId }, id, {
      ...patch,
      updated_at: nowIso(),
    })
    if (updated === undefined) throw notFound('workspace', id)
    return updated
  }

  /**
   * The workspace a request that names none lands in: the organization's oldest, or, when it
   * has none, a new one named Default (only with `create`; otherwise not_found).
   */
  async defaultId(organizationId: string, opts: { create?: boolean } = {}): Promise<string> {
    const all = await this.store.workspaces.find({ organization_id: organizationId }, {})
    const oldest = all.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id))[0]
    if (oldest !== undefined) return oldest.id
    if (opts.create === false) {
      throw new MiosaError('not_found', 'your organization has no workspace yet: create one, or name workspace_id', {
        details: { field: 'workspace_id' },
      })
    }
    return (await this.create(organizationId, { name: 'Default' })).id
  }

  /** Deletes an empty workspace; one that still holds projects is a 409 naming how many. */
  async delete(organizationId: string, id: string): Promise<void> {
    const scope = { organization_id: organizationId }
    await this.store.transaction(async (tx) => {
      if ((await tx.workspaces.get(scope, id)) === undefined) throw notFound('workspace', id)
      const projects = await tx.projects.find(scope, { workspace_id: id })
      if (projects.length > 0) {
        throw new MiosaError('conflict', `workspace ${id} still has ${projects.length} project(s); delete them first`, {
          details: { projects: projects.map((p) => p.id) },
        })
      }
      // Its branding, preview domain and limits go with it.
      await tx.tenantSettings.delete(scope, id)
      await tx.quotas.deleteWorkspaceLimits(scope, id)
      await tx.workspaces.delete(scope, id)
    })
  }
}
