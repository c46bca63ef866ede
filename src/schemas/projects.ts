import { z } from 'zod'
import { attributionInput, attributionOutput, attributionPatch, idOf, nameSchema, slugSchema, timestamp } from './common.js'

export const projectSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    name: z.string(),
    slug: z.string().meta({ description: 'Unique within its workspace' }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Project' })

export const createProjectSchema = z.strictObject({
  workspace_id: idOf('workspace'),
  name: nameSchema,
  slug: slugSchema.optional(),
  ...attributionInput,
})

export const updateProjectSchema = z.strictObject({ name: nameSchema.optional(), ...attributionPatch })

export type Project = z.infer<typeof projectSchema>
export type CreateProjectInput = z.input<typeof createProjectSchema>
export type UpdateProjectInput = z.input<typeof updateProjectSchema>
