import { apiKeySchema, createdApiKeySchema, createApiKeySchema } from '../../schemas/api-keys.js'
import { idParams, listQuery, pageOf } from '../../schemas/common.js'
import { defineRoute } from '../route.js'

const tag = 'API keys'

export const apiKeyRoutes = [
  defineRoute({
    method: 'POST',
    path: '/api-keys',
    scope: 'organization',
    tag,
    summary: 'Mint another key of your organization; the key is in the answer once',
    body: createApiKeySchema,
    response: createdApiKeySchema,
    status: 201,
    example: { name: 'ci' },
    handler: ({ services, organizationId, body }) => services.apiKeys.mint(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/api-keys',
    scope: 'organization',
    tag,
    summary: "List your organization's keys (never their values)",
    query: listQuery({}),
    response: pageOf(apiKeySchema),
    handler: ({ services, organizationId, query }) => services.apiKeys.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/api-keys/:id',
    scope: 'organization',
    tag,
    summary: 'Get a key (never its value)',
    params: idParams('apiKey'),
    response: apiKeySchema,
    handler: ({ services, organizationId, params }) => services.apiKeys.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/api-keys/:id',
    scope: 'organization',
    tag,
    summary: 'Revoke a key; it stops working at once',
    params: idParams('apiKey'),
    response: apiKeySchema,
    handler: ({ services, organizationId, params }) => services.apiKeys.revoke(organizationId, params.id),
  }),
]
