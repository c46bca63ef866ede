import { z } from 'zod'
import { organizationSchema } from './organizations.js'

export const whoamiSchema = z
  .object({
    kind: z.enum(['root', 'organization']),
    organization: organizationSchema.nullable(),
    api_key_id: z.string().nullable(),
  })
  .meta({ id: 'Whoami' })

export type Whoami = z.infer<typeof whoamiSchema>
