import { deletedSchema, idParams, listQuery, pageOf } from '../../schemas/common.js'
import { createWorkspaceSchema, updateWorkspaceSchema, workspaceSchema } from '../../schemas/workspaces.js'
import { limitsReportSchema } from '../../schemas/quotas.js'
import { defineRoute } from '../route.js'

const tag = 'Workspaces'

export const workspaceRoutes = [
  defineRoute({
    method: 'POST',
    path: '/workspaces',
    scope: 'organization',
    tag,
    summary: 'Create a workspace',
    body: createWorkspaceSchema,
    response: workspaceSchema,
    status: 201,
    example: { name: 'Dr Smith Clinic', external_workspace_id: 'client_7', metadata: { tier: 'gold' } },
    handler: ({ services, organizationId, body }) => services.workspaces.create(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/workspaces',
    scope: 'organization',
    tag,
    summary: 'List workspaces, newest first',
    query: listQuery({}),
    response: pageOf(workspaceSchema),
    handler: ({ services, organizationId, query }) => services.workspaces.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/workspaces/:id',
    scope: 'organization',
    tag,
    summary: 'Get a workspace',
    params: idParams('workspace'),
    response: workspaceSchema,
    handler: ({ services, organizationId, params }) => services.workspaces.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'PATCH',
    path: '/workspaces/:id',
    scope: 'organization',
    tag,
    summary: "Rename a workspace, change its attribution (its slug never changes: it is in URLs) or its limits (within the organization's; null returns one to the organization's)",
    params: idParams('workspace'),
    body: updateWorkspaceSchema,
    response: workspaceSchema,
    example: { name: 'Dr Smith Dental' },
    handler: async ({ services, organizationId, params, body }) => {
      const { limits, ...rest } = body
      // Limits first: a refused limit leaves the name and attribution as they were too.
      if (limits !== undefined) await services.quotas.setWorkspaceLimits(organizationId, params.id, limits)
      return services.workspaces.update(organizationId, params.id, rest)
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/workspaces/:id/limits',
    scope: 'organization',
    tag,
    summary: "A workspace's limits (its own, else the organization's) and its current use per resource",
    params: idParams('workspace'),
    response: limitsReportSchema,
    handler: ({ services, organizationId, params }) => services.quotas.workspaceReport(organizationId, params.id),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/workspaces/:id',
    scope: 'organization',
    tag,
    summary: 'Delete an empty workspace',
    params: idParams('workspace'),
    response: deletedSchema,
    handler: async ({ services, organizationId, params }) => {
      await services.workspaces.delete(organizationId, params.id)
      return { id: params.id, deleted: true as const }
    },
  }),
]
