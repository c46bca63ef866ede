import { z } from 'zod'
import { idOf, timestamp } from './common.js'
import { DEFAULT_ENVIRONMENT, environmentSchema } from './deployments.js'

// Env vars and secrets of a deployment environment. Values go in; only previews come out
// (the first 4 characters then `…` for plain values, `••••` for secrets), except raw plain
// values on request. A secret's value is never in any answer.

export const ENV_KEY_MAX_LENGTH = 256
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/
/** Largest value, in bytes of UTF-8. */
export const ENV_VALUE_MAX_BYTES = 64 * 1024
/** Most vars in one bulk write. */
export const ENV_BULK_MAX = 200
export const ENV_PHASES = ['build', 'runtime', 'both'] as const
export const SECRET_PREVIEW = '••••'

export const envKeySchema = z
  .string()
  .min(1)
  .max(ENV_KEY_MAX_LENGTH)
  .regex(ENV_KEY_PATTERN, 'must be an environment variable name: letters, digits and _, not starting with a digit')
  .meta({ description: 'Environment variable name; MIOSA_* and PORT are reserved', example: 'API_URL' })

// No zod length check on the value: the service measures bytes and never echoes the value.
const envValueSchema = z.string().meta({ description: `The value (up to ${ENV_VALUE_MAX_BYTES} bytes of UTF-8); never returned for a secret` })

const phaseSchema = z.enum(ENV_PHASES).meta({
  description: 'When it is needed: build (passed to the builder), runtime (instances and sandboxes) or both. Default runtime; NEXT_PUBLIC_* and VITE_* default to build',
})

const envVarInput = {
  key: envKeySchema,
  value: envValueSchema,
  is_secret: z.boolean().default(false).meta({ description: 'A secret: its preview is always •••• and its value is never returned, only injected' }),
  phase: phaseSchema.optional(),
}

export const setEnvVarSchema = z.strictObject({ environment: environmentSchema.default(DEFAULT_ENVIRONMENT), ...envVarInput })

export const setEnvVarsSchema = z.strictObject({
  environment: environmentSchema.default(DEFAULT_ENVIRONMENT),
  vars: z.array(z.strictObject(envVarInput)).min(1).max(ENV_BULK_MAX).meta({ description: 'Written together: all of them or, on any error, none' }),
})

export const listEnvVarsQuery = z.strictObject({
  environment: environmentSchema.optional().meta({ description: 'One environment (default: every environment of the deployment)' }),
  reveal: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => v === 'true')
    .meta({ description: 'true: also the raw values of vars that are not secrets (organization keys only); secrets stay ••••' }),
})

export const envVarEnvironmentQuery = z.strictObject({ environment: environmentSchema.default(DEFAULT_ENVIRONMENT) })

export const envVarParams = z.strictObject({ id: idOf('deployment'), key: envKeySchema })

export const envVarSchema = z
  .object({
    id: z.string(),
    deployment_id: z.string(),
    environment: z.string(),
    key: z.string(),
    phase: z.enum(ENV_PHASES),
    is_secret: z.boolean(),
    baked: z.boolean().meta({ description: 'Baked into the build (NEXT_PUBLIC_*, VITE_* at build time): changing it needs a new publish' }),
    preview: z.string().meta({ description: 'The first 4 characters then …, or •••• for a secret', example: 'http…' }),
    value: z.string().optional().meta({ description: 'Only with ?reveal=true, and never for a secret' }),
    key_id: z.string().meta({ description: 'Which master key seals it' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'EnvVar' })

const restartFields = {
  restart_required: z.literal(true).meta({ description: 'Changes take effect on the next boot' }),
  restart_command: z.string().meta({ description: 'What applies them now, without downtime', example: 'miosa restart smile-dental --env production' }),
}

export const envVarsSetResultSchema = z
  .object({ deployment_id: z.string(), environment: z.string(), data: z.array(envVarSchema), ...restartFields })
  .meta({ id: 'EnvVarsSet' })

export const envVarListSchema = z.object({ deployment_id: z.string(), data: z.array(envVarSchema) }).meta({ id: 'EnvVarList' })

export const envVarDeletedSchema = z
  .object({ deployment_id: z.string(), environment: z.string(), key: z.string(), deleted: z.literal(true), ...restartFields })
  .meta({ id: 'EnvVarDeleted' })

/** The value `confirm` must hold: a dangerous action is never taken on an empty or `null` body. */
export const ROTATE_MASTER_KEY_CONFIRM = 'rotate-master-key'

export const rotateMasterKeySchema = z.strictObject({
  confirm: z.literal(ROTATE_MASTER_KEY_CONFIRM).meta({
    description: `Must be "${ROTATE_MASTER_KEY_CONFIRM}": the explicit confirmation this platform-wide action needs`,
  }),
  new_key: z.string().min(1).max(200).optional().meta({
    description: 'The new master key (base64 or hex of 32 bytes); default: the server makes one. Required when the key comes from MIOSA_MASTER_KEY',
  }),
})

export const rotateMasterKeyResultSchema = z
  .object({
    re_encrypted: z.number().int().meta({ description: 'Values sealed again under the new key' }),
    key_id: z.string().meta({ description: 'The id of the new key (never the key)' }),
    key_source: z.enum(['file', 'env']),
    message: z.string(),
  })
  .meta({ id: 'RotateMasterKeyResult' })

export type EnvPhaseInput = (typeof ENV_PHASES)[number]
export type EnvVar = z.infer<typeof envVarSchema>
export type EnvVarsSetResult = z.infer<typeof envVarsSetResultSchema>
export type EnvVarList = z.infer<typeof envVarListSchema>
export type EnvVarDeleted = z.infer<typeof envVarDeletedSchema>
export type SetEnvVarInput = z.input<typeof setEnvVarSchema>
export type SetEnvVarsInput = z.input<typeof setEnvVarsSchema>
export type RotateMasterKeyInput = z.input<typeof rotateMasterKeySchema>
export type RotateMasterKeyResult = z.infer<typeof rotateMasterKeyResultSchema>
