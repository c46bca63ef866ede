import { idParams, pageOf } from '../../schemas/common.js'
import {
  createPreviewTokenSchema,
  createShareTokenSchema,
  createdPreviewTokenSchema,
  createdShareTokenSchema,
  listPreviewTokensQuery,
  listShareTokensQuery,
  previewTokenSchema,
  shareTokenSchema,
} from '../../schemas/previews.js'
import { defineRoute } from '../route.js'

// Access to sandbox previews: preview tokens (mp_…) for your signed-in users, share tokens
// (ms_…) for anyone with the link. Token values are in the create answer only.

const tag = 'Preview access'
const tokenParams = idParams('token')

export const previewRoutes = [
  defineRoute({
    method: 'POST',
    path: '/preview-tokens',
    scope: 'organization',
    tag,
    summary: 'Mint a preview token (mp_…): a signed, short-lived, revocable grant to open one sandbox preview; shown once',
    body: createPreviewTokenSchema,
    response: createdPreviewTokenSchema,
    status: 201,
    example: { sandbox_id: 'sbx_example', port: 3000, ttl_seconds: 3600, external_user_id: 'user_42' },
    handler: ({ services, organizationId, body }) => services.previewTokens.create(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/preview-tokens',
    scope: 'organization',
    tag,
    summary: 'List preview tokens, newest first (never their values); filter by sandbox_id',
    query: listPreviewTokensQuery,
    response: pageOf(previewTokenSchema),
    handler: ({ services, organizationId, query }) => services.previewTokens.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/preview-tokens/:id',
    scope: 'organization',
    tag,
    summary: 'Get a preview token (never its value)',
    params: tokenParams,
    response: previewTokenSchema,
    handler: ({ services, organizationId, params }) => services.previewTokens.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/preview-tokens/:id',
    scope: 'organization',
    tag,
    summary: 'Revoke a preview token: the edge refuses it, and cookies it opened, within 5 seconds',
    params: tokenParams,
    response: previewTokenSchema,
    handler: ({ services, organizationId, params }) => services.previewTokens.revoke(organizationId, params.id),
  }),
  defineRoute({
    method: 'POST',
    path: '/share-tokens',
    scope: 'organization',
    tag,
    summary: 'Create a share link (ms_…) to a sandbox preview for anyone who has it, optionally with a password and an expiry; shown once',
    body: createShareTokenSchema,
    response: createdShareTokenSchema,
    status: 201,
    example: { sandbox_id: 'sbx_example', port: 3000, name: 'Client review', password: 'correct horse battery', expires_at: '2099-01-01T00:00:00Z' },
    handler: ({ services, organizationId, body }) => services.shareTokens.create(organizationId, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/share-tokens',
    scope: 'organization',
    tag,
    summary: 'List share tokens, newest first (never their values); filter by sandbox_id',
    query: listShareTokensQuery,
    response: pageOf(shareTokenSchema),
    handler: ({ services, organizationId, query }) => services.shareTokens.list(organizationId, query),
  }),
  defineRoute({
    method: 'GET',
    path: '/share-tokens/:id',
    scope: 'organization',
    tag,
    summary: 'Get a share token (never its value)',
    params: tokenParams,
    response: shareTokenSchema,
    handler: ({ services, organizationId, params }) => services.shareTokens.get(organizationId, params.id),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/share-tokens/:id',
    scope: 'organization',
    tag,
    summary: 'Revoke a share link: the edge refuses it, and cookies it opened, within 5 seconds',
    params: tokenParams,
    response: shareTokenSchema,
    handler: ({ services, organizationId, params }) => services.shareTokens.revoke(organizationId, params.id),
  }),
]
