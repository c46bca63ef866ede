import { createdApiKeySchema, createApiKeySchema } from '../../schemas/api-keys.js'
import { idParams, listQuery, pageOf } from '../../schemas/common.js'
import { createOrganizationSchema, organizationSchema } from '../../schemas/organizations.js'
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
