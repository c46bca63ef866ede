import { deletedSchema, idParams, listQuery, pageOf } from '../../schemas/common.js'
import { createWorkspaceSchema, updateWorkspaceSchema, workspaceSchema } from '../../schemas/workspaces.js'
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
    summary: "Rename a workspace or change its attribution (its slug never changes: it is in URLs)",
    params: idParams('workspace'),
    body: updateWorkspaceSchema,
    response: workspaceSchema,
    example: { name: 'Dr Smith Dental' },
    handler: ({ services, organizationId, params, body }) => services.workspaces.update(organizationId, params.id, body),
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
