import { z } from 'zod'
import { idOf, timestamp } from './common.js'
import { envSchema } from './sandboxes.js'

// A sandbox's services: commands started in the background (`exec --background`), kept with
// the sandbox and started again whenever it resumes, so a dev server comes back with it.

export const startServiceSchema = z.strictObject({
  cmd: z
    .union([z.array(z.string().max(131_072)).min(1).max(4096), z.string().min(1).max(131_072)])
    .meta({ description: 'An argv array, or a string run by `sh -lc`' }),
  cwd: z.string().min(1).max(4096).optional(),
  env: envSchema.optional(),
})

export const backgroundServiceSchema = z
  .object({
    id: z.string(),
    sandbox_id: z.string(),
    cmd: z.array(z.string()).meta({ description: 'What runs: the argv (a command line given as a string is ["sh", "-lc", line])' }),
    cwd: z.string().nullable(),
    env_keys: z.array(z.string()).meta({ description: 'Names of the env vars it is given (values are never shown)' }),
    log_path: z.string().meta({ description: 'Where its stdout and stderr are appended, inside the sandbox' }),
    created_at: timestamp,
    started_at: z.string().nullable().meta({ description: 'When it was last started (at creation, then on each resume)' }),
  })
  .meta({ id: 'BackgroundService' })

export const serviceParams = z.strictObject({ id: idOf('sandbox'), service_id: idOf('process') })

export type StartServiceInput = z.input<typeof startServiceSchema>
export type BackgroundService = z.infer<typeof backgroundServiceSchema>
