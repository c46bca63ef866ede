import { createdApiKeySchema, createApiKeySchema } from '../../schemas/api-keys.js'
import { idParams, listQuery, pageOf } from '../../schemas/common.js'
import { createOrganizationSchema, organizationSchema } from '../../schemas/organizations.js'
import { limitsReportSchema, updateOrganizationSchema } from '../../schemas/quotas.js'
import { notFound } from '../../core/errors.js'
import { defineRoute } from '../route.js'

const tag = 'Organizations'

export const organizationRoutes = [
  defineRoute({
    method: 'POST',
    path: '/organizations',
    scope: 'root',
    tag,
    summary: 'Create an organization (root key)',
    body: createOrganizationSchema,
    response: organizationSchema,
    status: 201,
    example: { name: 'Clinic IQ', external_user_id: 'acct_42', metadata: { plan: 'pro' } },
    handler: ({ services, body }) => services.organizations.create(body),
  }),
  defineRoute({
    method: 'GET',
    path: '/organizations',
    scope: 'root',
    tag,
    summary: 'List organizations, newest first (root key)',
    query: listQuery({}),
    response: pageOf(organizationSchema),
    handler: ({ services, query }) => services.organizations.list(query),
  }),
  defineRoute({
    method: 'GET',
    path: '/organizations/:id',
    scope: 'root',
    tag,
    summary: 'Get an organization (root key)',
    params: idParams('organization'),
    response: organizationSchema,
    handler: ({ services, params }) => services.organizations.get(params.id),
  }),
  defineRoute({
    method: 'PATCH',
    path: '/organizations/:id',
    scope: 'root',
    tag,
    summary: "Change an organization's limits (root key); a null limit returns to the platform default. Answers its limits and use",
    params: idParams('organization'),
    body: updateOrganizationSchema,
    response: limitsReportSchema,
    example: { limits: { running_sandboxes: 2, memory_mb: null } },
    handler: ({ services, params, body }) => services.quotas.setOrganizationLimits(params.id, body.limits ?? {}),
  }),
  defineRoute({
    method: 'GET',
    path: '/organizations/:id/limits',
    scope: 'any',
    tag,
    summary: "An organization's limits and current use per resource (the root key, or the organization's own key)",
    params: idParams('organization'),
    response: limitsReportSchema,
    handler: async ({ services, params, caller }) => {
      // An organization key sees its own organization only; any other id is not found.
      if (caller.kind === 'organization' && caller.organization_id !== params.id) throw notFound('organization', params.id)
      return services.quotas.organizationReport(params.id)
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/organizations/:id/api-keys',
    scope: 'root',
    tag,
    summary: "Mint an organization's API key (root key); the key is in the answer once",
    params: idParams('organization'),
    body: createApiKeySchema,
    response: createdApiKeySchema,
    status: 201,
    example: { name: 'backend' },
    handler: ({ services, params, body }) => services.apiKeys.mint(params.id, body),
  }),
]
