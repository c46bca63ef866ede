import { z } from 'zod'
import { attributionInput, attributionOutput, attributionPatch, nameSchema, slugSchema, timestamp } from './common.js'
import { limitsPatchSchema } from './quotas.js'

export const workspaceSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    name: z.string(),
    slug: z.string().meta({ description: 'Unique across the platform: it is part of every managed URL' }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Workspace' })

export const createWorkspaceSchema = z.strictObject({
  name: nameSchema,
  slug: slugSchema.optional(),
  ...attributionInput,
})

export const updateWorkspaceSchema = z.strictObject({ name: nameSchema.optional(), ...attributionPatch, limits: limitsPatchSchema.optional() })

export type Workspace = z.infer<typeof workspaceSchema>
export type CreateWorkspaceInput = z.input<typeof createWorkspaceSchema>
export type UpdateWorkspaceInput = z.input<typeof updateWorkspaceSchema>
