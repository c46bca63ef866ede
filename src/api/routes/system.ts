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
    handler: async ({ services, caller }) => {
      if (caller.kind !== 'organization') return { kind: 'root' as const, organization: null, api_key_id: null }
      const organization = await services.organizations.get(caller.organization_id)
      return { kind: 'organization' as const, organization, api_key_id: caller.api_key_id }
    },
  }),
]
