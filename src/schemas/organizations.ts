import { z } from 'zod'
import { attributionInput, attributionOutput, nameSchema, slugSchema, timestamp } from './common.js'

export const organizationSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    slug: z.string(),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Organization' })

export const createOrganizationSchema = z.strictObject({
  name: nameSchema,
  slug: slugSchema.optional(),
  ...attributionInput,
})

export type Organization = z.infer<typeof organizationSchema>
export type CreateOrganizationInput = z.input<typeof createOrganizationSchema>
