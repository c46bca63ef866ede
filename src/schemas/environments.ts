import { z } from 'zod'
import { ENVIRONMENT_NAME_MAX_LENGTH, ENVIRONMENT_NAME_PATTERN, ENVIRONMENT_NAME_RULE, PRODUCTION } from '../core/slugs.js'
import { idOf, timestamp } from './common.js'

// Deployment environments: per project, `production` and `staging` from its creation, more
// (`preview/pr-42`, `qa`, `canary`) created and deleted at will. Each deployment of the
// project serves, per environment, its own active version at its own URL.

export const environmentNameSchema = z
  .string()
  .max(ENVIRONMENT_NAME_MAX_LENGTH)
  .regex(ENVIRONMENT_NAME_PATTERN, `must be ${ENVIRONMENT_NAME_RULE}`)
  .meta({ description: `An environment name (default "${PRODUCTION}"): e.g. production, staging, qa, preview/pr-42` })

export const environmentSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    project_id: z.string(),
    name: z.string(),
    slug: z.string().meta({ description: 'The name with "/" → "-": the part of the URL after `<deployment-slug>--`; unique in its project' }),
    created_at: timestamp,
  })
  .meta({ id: 'Environment' })

export const createEnvironmentSchema = z.strictObject({ name: environmentNameSchema })

export const environmentParams = z.strictObject({
  id: idOf('project'),
  name: environmentNameSchema.meta({ description: 'The environment name, URL-encoded (preview%2Fpr-42)', example: 'staging' }),
})

export const deletedEnvironmentSchema = z
  .object({
    project_id: z.string(),
    name: z.string(),
    deleted: z.literal(true),
    routes_removed: z.number().int().meta({ description: 'Deployment routes the environment had (what they served is no longer served)' }),
  })
  .meta({ id: 'DeletedEnvironment' })

export type Environment = z.infer<typeof environmentSchema>
export type CreateEnvironmentInput = z.input<typeof createEnvironmentSchema>
export type DeletedEnvironment = z.infer<typeof deletedEnvironmentSchema>
