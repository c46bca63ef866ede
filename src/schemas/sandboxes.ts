import { z } from 'zod'
import { parseDuration } from '../core/durations.js'
import { egressInputSchema, egressOutputSchema } from './egress.js'
import { attributionInput, attributionOutput, attributionPatch, idOf, listQuery, nameSchema, timestamp } from './common.js'

export const SANDBOX_STATES = ['creating', 'running', 'paused', 'snapshotting', 'destroyed', 'error'] as const
export const SNAPSHOT_STATES = ['creating', 'ready', 'failed'] as const

export const TIMEOUT_MAX_SECONDS = 7 * 86_400
export const EXEC_TIMEOUT_MAX_SECONDS = 3600

/** `10m`, `1h`, `90s` or a number of seconds, between `min` and `max` seconds. */
export function durationSchema(min: number, max: number) {
  return z
    .union([z.number(), z.string()])
    .transform((value, ctx) => {
      const seconds = parseDuration(value)
      if (seconds === undefined || seconds < min || seconds > max) {
        ctx.addIssue({ code: 'custom', message: `must be a duration like 10m, 1h or a number of seconds, from ${min}s to ${max}s` })
        return z.NEVER
      }
      return seconds
    })
    .meta({ description: 'A duration: seconds, or 90s, 10m, 1h, 2d' })
}

export const envSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').max(256), z.string().max(32_768))
  .refine((env) => Object.keys(env).length <= 200, { message: 'at most 200 variables' })

export const sandboxDiskSchema = z
  .object({
    used_bytes: z.number().meta({ description: "Its writable layer's size (/workspace and every other change to its filesystem; not /tmp)" }),
    limit_bytes: z.number().meta({ description: 'Past it, file-API writes and archive uploads are refused (413) until a new measure is under it' }),
    measured_at: timestamp,
    exceeded: z.boolean(),
  })
  .meta({ id: 'SandboxDisk' })

export const sandboxSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    project_id: z.string().nullable(),
    name: z.string(),
    slug: z.string().meta({ description: 'Short DNS-safe id used in preview hostnames' }),
    template: z.string(),
    state: z.enum(SANDBOX_STATES),
    error: z.string().nullable().meta({ description: 'Why the sandbox is in state error' }),
    persistent: z.boolean(),
    timeout_seconds: z.number(),
    cpu: z.number(),
    memory_mb: z.number(),
    env_keys: z.array(z.string()).meta({ description: 'Names of the variables given at creation (values are never returned)' }),
    deployment_id: z.string().nullable().meta({ description: 'With environment: the deployment environment whose env vars are injected (at creation and on every resume)' }),
    environment: z.string().nullable().meta({ description: "The deployment environment it develops against (e.g. staging), or null" }),
    snapshot_id: z.string().nullable().meta({ description: 'The snapshot it was created from' }),
    forked_from: z.string().nullable(),
    last_activity_at: timestamp,
    expires_at: timestamp.nullable().meta({ description: 'When an idle running sandbox is stopped (persistent) or destroyed' }),
    preview_public: z.boolean().meta({ description: 'Anyone may open its previews, without a token (default false: private)' }),
    allow_internet: z.boolean().meta({ description: 'false: connections beyond its workspace network go only to egress.allow' }),
    egress: egressOutputSchema,
    disk: sandboxDiskSchema.nullable().meta({ description: 'Its last disk measure (running sandboxes, when the platform limits disk), or null' }),
    previews: z
      .record(z.string(), z.string())
      .meta({
        description:
          "Preview URLs by port: the template's default port, at the workspace's verified preview domain when it has one. " +
          'Other ports: GET /sandboxes/:id/preview-url?port=',
        example: { '3000': 'http://3000-ab12cd34.sandbox.localhost:8081' },
      }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Sandbox' })

export const createSandboxSchema = z.strictObject({
  template: z.string().min(1).max(64).default('miosa-sandbox'),
  name: nameSchema.optional(),
  workspace_id: idOf('workspace').optional().meta({ description: "Default: the organization's first workspace (created as Default when there is none)" }),
  project_id: idOf('project').optional(),
  timeout: durationSchema(10, TIMEOUT_MAX_SECONDS).optional().meta({ description: 'Idle time before a stop (persistent) or destroy; default 10m' }),
  persistent: z.boolean().default(true),
  snapshot_id: idOf('snapshot').optional(),
  env: envSchema.optional(),
  deployment_id: idOf('deployment').optional().meta({ description: 'Develop against this deployment: with environment, its env vars are injected' }),
  environment: z.string().min(1).max(64).optional().meta({ description: 'The deployment environment whose runtime env vars the sandbox gets (default production when deployment_id is given)' }),
  cpu: z.number().min(0.1).max(64).optional(),
  memory_mb: z.number().int().min(64).max(262_144).optional(),
  allow_internet: z
    .boolean()
    .optional()
    .meta({ description: 'false: no connections beyond its workspace network (DNS still resolves), except to egress.allow. Default true. Kept across stop, resume and fork' }),
  egress: egressInputSchema.optional(),
  ...attributionInput,
}).superRefine((input, ctx) => {
  if (input.allow_internet === true && input.egress !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['egress'], message: 'an allow-list restricts the sandbox: leave allow_internet out, or set it to false' })
  }
})

export const updateSandboxSchema = z.strictObject({
  name: nameSchema.optional(),
  timeout: durationSchema(10, TIMEOUT_MAX_SECONDS).optional().meta({ description: 'A new idle timeout' }),
  preview_public: z.boolean().optional().meta({ description: 'true: anyone may open its previews without a token' }),
  ...attributionPatch,
})

export const previewUrlQuery = z.strictObject({
  port: z.coerce
    .number()
    .int()
    .min(1)
    .max(65_535)
    .optional()
    .meta({ description: "A port inside the sandbox; default: the template's default port" }),
})

export const previewUrlSchema = z
  .object({
    url: z.string(),
    port: z.number(),
    public: z.boolean().meta({ description: 'Opens without a token (the sandbox has preview_public)' }),
  })
  .meta({ id: 'PreviewUrl' })

export const forkSandboxSchema = z.strictObject({ name: nameSchema.optional(), ...attributionInput })

export const keepAliveSchema = z.strictObject({
  timeout: durationSchema(10, TIMEOUT_MAX_SECONDS).optional().meta({ description: 'A new idle timeout; default: keep the current one' }),
})

export const execSchema = z.strictObject({
  cmd: z
    .union([z.array(z.string().max(131_072)).min(1).max(4096), z.string().min(1).max(131_072)])
    .meta({ description: 'An argv array, or a string run by `sh -lc`' }),
  cwd: z.string().min(1).max(4096).optional(),
  env: envSchema.optional(),
  timeout: durationSchema(1, EXEC_TIMEOUT_MAX_SECONDS).optional().meta({ description: 'Default 5m' }),
  stdin: z.string().max(10 * 1024 * 1024).optional(),
})

export const execResultSchema = z
  .object({
    stdout: z.string(),
    stderr: z.string(),
    exit_code: z.number(),
    duration_ms: z.number(),
    truncated: z.boolean().meta({ description: 'Output beyond the cap (1 MiB per stream) was dropped' }),
    timed_out: z.boolean(),
  })
  .meta({ id: 'ExecResult' })

export const fileStatSchema = z
  .object({
    name: z.string(),
    path: z.string(),
    type: z.enum(['file', 'dir', 'symlink', 'other']),
    size: z.number(),
    mode: z.number(),
    mtime: z.string(),
    target: z.string().optional(),
  })
  .meta({ id: 'FileStat' })

/** A `?name=true|false` query flag (absent: false). */
export function queryFlag(description: string) {
  return z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .meta({ description })
}

const pathField = z.string().min(1).max(4096).meta({ description: 'A path in the sandbox: absolute, or relative to /workspace' })

export const listSandboxesQuery = listQuery({
  state: z.enum(SANDBOX_STATES).optional().meta({ description: 'Only sandboxes in this state (destroyed ones are listed only when asked for)' }),
  template: z.string().min(1).max(64).optional(),
  workspace_id: idOf('workspace').optional(),
  project_id: idOf('project').optional(),
})

export const createSandboxQuery = z.strictObject({
  wait: queryFlag('Answer once the sandbox is running (or failed) instead of at once, in state creating'),
})

export const execQuery = z.strictObject({
  stream: queryFlag('Answer with server-sent events (also chosen by "Accept: text/event-stream")'),
})

export const terminalQuery = z.strictObject({
  cols: z.coerce.number().int().min(1).max(1000).default(80),
  rows: z.coerce.number().int().min(1).max(1000).default(24),
})

export const pathQuery = z.strictObject({ path: pathField })
export const writeFileQuery = z.strictObject({
  path: pathField,
  mode: z.string().regex(/^[0-7]{3,4}$/, 'must be octal permission bits like 644 or 0755').optional(),
})
export const deleteFileQuery = z.strictObject({ path: pathField, recursive: queryFlag('Delete a directory and everything in it') })
export const moveFileSchema = z.strictObject({ from: pathField, to: pathField, overwrite: z.boolean().default(false) })
export const mkdirSchema = z.strictObject({ path: pathField })
export const fileListSchema = z.object({ entries: z.array(fileStatSchema) })
export const fileDeletedSchema = z.object({ path: z.string(), deleted: z.literal(true) })
export const archiveUploadedSchema = z.object({ path: z.string(), uploaded: z.literal(true) })

/** One server-sent event of a streamed exec (the `data:` line; the `event:` line names its type). */
export const execEventSchema = z
  .union([
    z.object({ data: z.string().meta({ description: 'base64 bytes' }) }).meta({ description: 'event: stdout | stderr' }),
    z
      .object({ exit_code: z.number(), duration_ms: z.number(), truncated: z.boolean(), timed_out: z.boolean() })
      .meta({ description: 'event: exit (the last event)' }),
    z.object({ error: z.object({ code: z.string(), message: z.string() }) }).meta({ description: 'event: error (the command failed midway)' }),
  ])
  .meta({ id: 'ExecEvent' })

export const snapshotSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    sandbox_id: z.string().meta({ description: 'The sandbox it was taken from (which may since be destroyed)' }),
    name: z.string(),
    state: z.enum(SNAPSHOT_STATES),
    error: z.string().nullable(),
    size_bytes: z.number().nullable(),
    template: z.string(),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Snapshot' })

export const createSnapshotSchema = z.strictObject({ name: nameSchema.optional(), ...attributionInput })

export const templateSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    parent: z.string().nullable(),
    image: z.string(),
    built: z.boolean(),
    size_bytes: z.number().nullable(),
    user: z.string(),
    default_port: z.number().nullable(),
    building: z
      .object({
        template: z.string().meta({ description: 'The image being built now: this template, or a parent it needs first' }),
        message: z.string().meta({ description: 'The latest line of the build' }),
        step: z.number().int().nullable().meta({ description: 'The Dockerfile step it is at (null before the first, and for the Debian base)' }),
        steps: z.number().int().nullable().meta({ description: "The Dockerfile's number of steps" }),
        started_at: z.string(),
      })
      .nullable()
      .meta({ description: 'Its image build in progress on this server (the first use of the template builds it), else null' }),
  })
  .meta({ id: 'Template' })

export const templateListSchema = z.object({ data: z.array(templateSchema) })

export const buildTemplatesSchema = z.strictObject({
  name: z.string().min(1).max(64).optional().meta({ description: 'One template; default: every template' }),
})

/** One NDJSON line of a template build. */
export const templateBuildEventSchema = z
  .union([
    z.object({ type: z.literal('progress'), template: z.string(), message: z.string(), step: z.number().int().nullable(), steps: z.number().int().nullable() }),
    z.object({ type: z.literal('done'), templates: z.array(templateSchema) }),
    z.object({ type: z.literal('error'), error: z.object({ code: z.string(), message: z.string() }) }),
  ])
  .meta({ id: 'TemplateBuildEvent' })

export type Sandbox = z.infer<typeof sandboxSchema>
export type SandboxDisk = z.infer<typeof sandboxDiskSchema>
export type SandboxState = (typeof SANDBOX_STATES)[number]
export type CreateSandboxInput = z.input<typeof createSandboxSchema>
export type ExecInput = z.input<typeof execSchema>
export type ExecResultOutput = z.infer<typeof execResultSchema>
export type FileStatOutput = z.infer<typeof fileStatSchema>
export type Snapshot = z.infer<typeof snapshotSchema>
export type Template = z.infer<typeof templateSchema>
export type SandboxListQuery = z.input<typeof listSandboxesQuery>
export type ForkSandboxInput = z.input<typeof forkSandboxSchema>
export type UpdateSandboxInput = z.input<typeof updateSandboxSchema>
export type PreviewUrl = z.infer<typeof previewUrlSchema>
export type CreateSnapshotInput = z.input<typeof createSnapshotSchema>
export type TemplateBuildEvent = z.infer<typeof templateBuildEventSchema>
