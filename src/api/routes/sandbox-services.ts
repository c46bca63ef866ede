import { deletedSchema, idParams } from '../../schemas/common.js'
import { backgroundServiceSchema, serviceParams, startServiceSchema } from '../../schemas/sandbox-services.js'
import { z } from 'zod'
import { defineRoute } from '../route.js'

// A sandbox's background services (what `miosa sandbox exec --background` starts): kept with
// the sandbox and started again whenever it resumes.

const tag = 'Sandboxes'

export const sandboxServiceRoutes = [
  defineRoute({
    method: 'POST',
    path: '/sandboxes/:id/services',
    scope: 'organization',
    tag,
    summary: 'Start a command in the background (a dev server) and keep it as a service of the sandbox: it is started again whenever the sandbox resumes',
    params: idParams('sandbox'),
    body: startServiceSchema,
    response: backgroundServiceSchema,
    status: 201,
    example: { cmd: 'npm run dev', cwd: '/workspace' },
    handler: ({ services, organizationId, params, body }) => services.backgroundServices.start(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/sandboxes/:id/services',
    scope: 'organization',
    tag,
    summary: "The sandbox's background services, oldest first",
    params: idParams('sandbox'),
    response: z.object({ data: z.array(backgroundServiceSchema) }),
    handler: async ({ services, organizationId, params }) => ({ data: await services.backgroundServices.list(organizationId, params.id) }),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/sandboxes/:id/services/:service_id',
    scope: 'organization',
    tag,
    summary: 'End a background service and forget it: it is not started again on resume',
    params: serviceParams,
    response: deletedSchema,
    handler: async ({ services, organizationId, params }) => {
      await services.backgroundServices.remove(organizationId, params.id, params.service_id)
      return { id: params.service_id, deleted: true as const }
    },
  }),
]
