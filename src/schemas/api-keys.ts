import { z } from 'zod'
import { attributionInput, attributionOutput, timestamp } from './common.js'

export const apiKeySchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    name: z.string(),
    prefix: z.string().meta({ description: 'The first characters of the key, to recognise it; never the whole key' }),
    created_at: timestamp,
    last_used_at: timestamp.nullable(),
    revoked_at: timestamp.nullable(),
    ...attributionOutput,
  })
  .meta({ id: 'ApiKey' })

export const createdApiKeySchema = apiKeySchema
  .extend({ key: z.string().meta({ description: 'The key itself (`msk_…`). Shown once: store it now.' }) })
  .meta({ id: 'CreatedApiKey' })

export const createApiKeySchema = z.strictObject({
  name: z.string().trim().min(1).max(100).default('default'),
  ...attributionInput,
})

export type ApiKey = z.infer<typeof apiKeySchema>
export type CreatedApiKey = z.infer<typeof createdApiKeySchema>
export type CreateApiKeyInput = z.input<typeof createApiKeySchema>
