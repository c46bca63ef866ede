import { idParams } from '../../schemas/common.js'
import {
  envVarDeletedSchema,
  envVarEnvironmentQuery,
  envVarListSchema,
  envVarParams,
  envVarsSetResultSchema,
  listEnvVarsQuery,
  ROTATE_MASTER_KEY_CONFIRM,
  rotateMasterKeySchema,
  rotateMasterKeyResultSchema,
  setEnvVarSchema,
  setEnvVarsSchema,
} from '../../schemas/env-vars.js'
import { defineRoute } from '../route.js'

// Env vars and secrets of deployment environments. Values go in; previews come out. Raw
// values of plain vars only with ?reveal=true (organization keys; the root key reaches no
// organization route); a secret's value never leaves, it is only injected. Every change
// answers restart_required: it takes effect on the next boot (`miosa restart`).

const tag = 'Env vars'
const deploymentParams = idParams('deployment')

export const envVarRoutes = [
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/env',
    scope: 'organization',
    tag,
    summary: "Set one env var or secret of a deployment environment (replacing the key's value); takes effect on the next boot",
    params: deploymentParams,
    body: setEnvVarSchema,
    response: envVarsSetResultSchema,
    example: { environment: 'production', key: 'API_URL', value: 'https://api.example.com', is_secret: false },
    handler: ({ services, organizationId, params, body }) => services.envVars.set(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'POST',
    path: '/deployments/:id/env/bulk',
    scope: 'organization',
    tag,
    summary: 'Set several env vars of one environment at once: all of them or, if any is invalid, none',
    params: deploymentParams,
    body: setEnvVarsSchema,
    response: envVarsSetResultSchema,
    example: { environment: 'production', vars: [{ key: 'API_URL', value: 'https://api.example.com' }, { key: 'STRIPE_KEY', value: 'sk_live_example', is_secret: true }] },
    handler: ({ services, organizationId, params, body }) => services.envVars.setMany(organizationId, params.id, body),
  }),
  defineRoute({
    method: 'GET',
    path: '/deployments/:id/env',
    scope: 'organization',
    tag,
    summary: 'List env vars with previews (first 4 characters then …; •••• for secrets); ?reveal=true adds the raw values of vars that are not secrets',
    params: deploymentParams,
    query: listEnvVarsQuery,
    response: envVarListSchema,
    handler: ({ services, organizationId, params, query }) =>
      services.envVars.list(organizationId, params.id, { environment: query.environment, reveal: query.reveal }),
  }),
  defineRoute({
    method: 'DELETE',
    path: '/deployments/:id/env/:key',
    scope: 'organization',
    tag,
    summary: 'Remove an env var from an environment (default production); takes effect on the next boot',
    params: envVarParams,
    query: envVarEnvironmentQuery,
    response: envVarDeletedSchema,
    handler: ({ services, organizationId, params, query }) => services.envVars.unset(organizationId, params.id, query.environment, params.key),
  }),
  defineRoute({
    method: 'POST',
    path: '/admin/rotate-master-key',
    scope: 'root',
    tag: 'Admin',
    summary: 'Re-encrypt every env value under a new master key without downtime, then drop the old key (root key only)',
    body: rotateMasterKeySchema,
    response: rotateMasterKeyResultSchema,
    example: { confirm: ROTATE_MASTER_KEY_CONFIRM },
    handler: ({ services, body }) => services.envVars.rotateMasterKey({ new_key: body.new_key }),
  }),
]
