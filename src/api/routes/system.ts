import { whoamiSchema } from '../../schemas/system.js'
import { defineRoute } from '../route.js'

export const systemRoutes = [
  defineRoute({
    method: 'GET',
    path: '/whoami',
    scope: 'any',
    tag: 'System',
    summary: 'Who the presented key belongs to',
    response: whoamiSchema,
    handler: async ({ services, caller }) =>
      caller.kind === 'root'
        ? { kind: 'root' as const, organization: null, api_key_id: null }
        : {
            kind: 'organization' as const,
            organization: await services.organizations.get(caller.organization_id),
            api_key_id: caller.api_key_id,
          },
  }),
]
