import { deletedSchema, idOf, idParams, listQuery, pageOf } from '../../schemas/common.js'
import { createProjectSchema, projectSchema, updateProjectSchema } from '../../schemas/projects.js'
import { defineRoute } from '../route.js'

const tag = 'Projects'

export const projectRoutes = [
  defineRoute({
    method: 'POST',
    path: '/projects',
    scope: 'organization',
    tag,
    summary: 'Create a project in a workspace',
    body: createProjectSchema,
    response: projectSchema,
    status: 201,
    example: { workspace_id: 'ws_example', name: 'Intake form', external_project_id: 'doc_19' },
    handler: ({ services, organizationId, body }) => services.projects.create(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/projects',
    scope: 'organization',
    tag,
    summary: 'List projects, newest first; filter by workspace_id',
    query: listQuery({ workspace_id: idOf('workspace').optional() }),
    response: pageOf(projectSchema),
    handler: ({ services, organizationId, query }) => services.projects.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/projects/:id',
    scope: 'organization',
    tag,
    summary: 'Get a project',
    params: idParams('project'),
    response: projectSchema,
    handler: ({ services, organizationId, params }) => services.projects.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'PATCH',
    path: '/projects/:id',
    scope: 'organization',
    tag,
    summary: 'Rename a project or change its attribution',
    params: idParams('project'),
    body: updateProjectSchema,
    response: projectSchema,
    example: { metadata: { stage: 'beta' } },
    handler: ({ services, organizationId, params, body }) => services.projects.update(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/projects/:id',
    scope: 'organization',
    tag,
    summary: 'Delete a project',
    params: idParams('project'),
    response: deletedSchema,
    handler: async ({ services, organizationId, params }) => {
      await services.projects.delete(organizationId, params.id)
      return { id: params.id, deleted: true as const }
    },
  }),
]
