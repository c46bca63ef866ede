import { createEnvironmentSchema, deletedEnvironmentSchema, environmentParams, environmentSchema } from '../../schemas/environments.js'
import { idParams } from '../../schemas/common.js'
import { z } from 'zod'
import { defineRoute } from '../route.js'

const tag = 'Environments'

export const environmentRoutes = [
  defineRoute({
    method: 'GET',
    path: '/projects/:id/environments',
    scope: 'organization',
    tag,
    summary: "List a project's deployment environments (production first)",
    params: idParams('project'),
    response: z.object({ data: z.array(environmentSchema) }),
    handler: async ({ services, organizationId, params }) => ({ data: await services.environments.list(organizationId, params.id) }),
  }),
  defineRoute({
    method: 'POST',
    path: '/projects/:id/environments',
    scope: 'organization',
    tag,
    summary: 'Create a deployment environment in a project (e.g. qa, canary, preview/pr-42)',
    params: idParams('project'),
    body: createEnvironmentSchema,
    response: environmentSchema,
    status: 201,
    example: { name: 'preview/pr-42' },
    handler: ({ services, organizationId, params, body }) => services.environments.create(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/projects/:id/environments/:name',
    scope: 'organization',
    tag,
    summary:
      'Delete a deployment environment (name URL-encoded: preview%2Fpr-42) and its route in every deployment of the project: what it served stops being served and its instances are drained. production cannot be deleted.',
    params: environmentParams,
    response: deletedEnvironmentSchema,
    handler: async ({ services, organizationId, params }) => {
      const { routes_removed } = await services.environments.delete(organizationId, params.id, params.name)
      return { project_id: params.id, name: params.name, deleted: true as const, routes_removed }
    },
  }),
]
