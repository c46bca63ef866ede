import { z } from 'zod'
import { attributionInput, attributionOutput, idOf, listQuery, nameSchema, slugSchema, timestamp } from './common.js'
import { queryFlag } from './sandboxes.js'

// Publishing: a deployment (the stable app with its managed URL), its versions (one per
// publish, numbered per deployment), and the route of each environment to its active
// version, whose every change is recorded.

export const PUBLISH_KINDS = ['auto', 'static', 'dynamic'] as const
export const VERSION_STATUSES = ['building', 'ready', 'failed', 'archived'] as const
export const ROUTE_CHANGE_REASONS = ['publish', 'rollback', 'promote'] as const
export const DEFAULT_ENVIRONMENT = 'production'

export const environmentSchema = slugSchema.meta({ description: `An environment name (default "${DEFAULT_ENVIRONMENT}")` })

const shaSchema = z.string().nullable()

export const buildSettingsSchema = z
  .strictObject({
    install_command: z.string().min(1).max(2000).optional().meta({ description: 'Replaces the detected install step; run by `sh -lc` in /workspace' }),
    build_command: z.string().min(1).max(2000).optional().meta({ description: 'Replaces the detected build step; run by `sh -lc` in /workspace' }),
    output_dir: z
      .string()
      .min(1)
      .max(500)
      .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), { message: 'must be a relative path inside /workspace' })
      .optional()
      .meta({ description: 'The directory the release is made of, relative to /workspace (e.g. "dist")' }),
    spa_fallback: z.boolean().optional().meta({ description: 'Serve index.html for paths that match no file (single-page apps)' }),
  })
  .meta({ id: 'BuildSettings' })

export const buildPlanSchema = z
  .object({
    kind: z.enum(['static', 'dynamic']),
    detected: z.enum(['static-files', 'node', 'dockerfile', 'python', 'ruby', 'go']),
    install: z.array(z.string()).nullable(),
    build: z.array(z.string()).nullable(),
    output_dir: z.string(),
    start: z.array(z.string()).nullable(),
    spa_fallback: z.boolean(),
    reasons: z.array(z.string()),
  })
  .meta({ id: 'BuildPlan' })

export const deploymentRouteSchema = z
  .object({
    environment: z.string(),
    active_version_id: z.string().nullable(),
    updated_at: timestamp,
  })
  .meta({ id: 'DeploymentRoute' })

export const deploymentSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    project_id: z.string().nullable(),
    name: z.string(),
    slug: z.string().meta({ description: 'Unique within its workspace: the first label of the managed hostname' }),
    spa_fallback: z.boolean(),
    url: z.string().meta({ description: 'The managed URL (`<deployment-slug>.<workspace-slug>.<base-domain>`): stable across publishes' }),
    active_version_id: z.string().nullable().meta({ description: 'The version the production environment serves; null until a publish is ready' }),
    routes: z.array(deploymentRouteSchema).meta({ description: 'Every environment and its active version' }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Deployment' })

export const versionSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    deployment_id: z.string(),
    environment: z.string().meta({ description: 'The environment the publish was for' }),
    version_number: z.number().int().meta({ description: 'Strictly increasing per deployment' }),
    status: z.enum(VERSION_STATUSES),
    error: z.string().nullable(),
    kind: z.enum(PUBLISH_KINDS).meta({ description: 'The kind asked for at publish time' }),
    plan: buildPlanSchema.nullable(),
    source_sha256: shaSchema.meta({ description: 'sha256 of the source snapshot (the workspace as it was at publish time)' }),
    release_sha256: shaSchema.meta({ description: 'sha256 of the release (the immutable build output)' }),
    release_kind: z.enum(['static', 'dynamic']).nullable(),
    sandbox_id: z.string().nullable(),
    created_by: z.string().meta({ description: 'The API key id that published it' }),
    url: z.string().meta({ description: "The deployment's managed URL" }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Version' })

export const routeChangeSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    deployment_id: z.string(),
    environment: z.string(),
    from_version_id: z.string().nullable(),
    to_version_id: z.string(),
    reason: z.enum(ROUTE_CHANGE_REASONS),
    actor: z.string().meta({ description: 'The API key id that made the change' }),
    created_at: timestamp,
  })
  .meta({ id: 'RouteChange' })

export const createDeploymentSchema = z.strictObject({
  name: nameSchema,
  slug: slugSchema.optional().meta({ description: 'Default: made from the name' }),
  workspace_id: idOf('workspace').optional().meta({ description: "Default: the organization's first workspace" }),
  project_id: idOf('project').optional(),
  spa_fallback: z.boolean().optional(),
  ...attributionInput,
})

const publishFields = {
  sandbox_id: idOf('sandbox').meta({ description: 'The sandbox whose /workspace is published (frozen at publish time)' }),
  kind: z.enum(PUBLISH_KINDS).default('auto'),
  environment: environmentSchema.default(DEFAULT_ENVIRONMENT),
  settings: buildSettingsSchema.optional(),
  ...attributionInput,
}

export const publishSchema = z.strictObject(publishFields)

export const publishByNameSchema = z.strictObject({
  name: nameSchema.meta({ description: 'The deployment, found by name (or slug) in the workspace, created on first publish' }),
  slug: slugSchema.optional(),
  workspace_id: idOf('workspace').optional(),
  project_id: idOf('project').optional(),
  ...publishFields,
})

const waitFlag = queryFlag('Answer once the build has ended (ready or failed) instead of at once, in status building')

export const waitQuery = z.strictObject({ wait: waitFlag })

export const uploadPublishQuery = z.strictObject({
  kind: z.enum(PUBLISH_KINDS).default('auto'),
  environment: environmentSchema.default(DEFAULT_ENVIRONMENT),
  install_command: z.string().min(1).max(2000).optional(),
  build_command: z.string().min(1).max(2000).optional(),
  output_dir: buildSettingsSchema.shape.output_dir,
  spa_fallback: z.enum(['true', 'false']).optional().meta({ description: 'Serve index.html for paths that match no file' }),
  wait: waitFlag,
})

export const uploadPlanQuery = uploadPublishQuery.omit({ environment: true, wait: true })

export const planSchema = z.strictObject({
  sandbox_id: publishFields.sandbox_id,
  kind: publishFields.kind,
  settings: buildSettingsSchema.optional(),
})

export const planResultSchema = z
  .object({
    plan: buildPlanSchema,
    source: z.object({ sha256: z.string(), size_bytes: z.number(), files: z.number() }),
  })
  .meta({ id: 'PlanResult' })

const versionRef = {
  version_id: idOf('version').optional(),
  version_number: z.number().int().min(1).optional(),
}

function oneVersion<T extends { version_id?: string | undefined; version_number?: number | undefined }>(v: T, ctx: z.RefinementCtx): void {
  if ((v.version_id === undefined) === (v.version_number === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['version_id'], message: 'give exactly one of version_id and version_number' })
  }
}

export const rollbackSchema = z
  .strictObject({ ...versionRef, environment: environmentSchema.default(DEFAULT_ENVIRONMENT) })
  .superRefine(oneVersion)

export const promoteSchema = z
  .strictObject({ ...versionRef, environment: environmentSchema.default(DEFAULT_ENVIRONMENT) })
  .superRefine(oneVersion)

export const listDeploymentsQuery = listQuery({
  workspace_id: idOf('workspace').optional(),
  project_id: idOf('project').optional(),
  slug: z.string().min(1).max(64).optional(),
  name: z.string().min(1).max(100).optional(),
})

export const listVersionsQuery = listQuery({
  status: z.enum(VERSION_STATUSES).optional().meta({ description: 'Only versions in this status; archived ones are listed only when asked for' }),
  environment: environmentSchema.optional(),
  version_number: z.coerce.number().int().min(1).optional(),
  include_archived: queryFlag('List archived versions too'),
})

export const listRouteChangesQuery = listQuery({ environment: environmentSchema.optional() })

export const logsQuery = z.strictObject({
  follow: queryFlag('Server-sent events: the stored lines, then each new one until the build ends'),
})

export const logLineEventSchema = z.object({ line: z.string() })
export const logEndEventSchema = z.object({ status: z.enum(VERSION_STATUSES), error: z.string().nullable() })

export type Deployment = z.infer<typeof deploymentSchema>
export type DeploymentRoute = z.infer<typeof deploymentRouteSchema>
export type Version = z.infer<typeof versionSchema>
export type VersionStatus = (typeof VERSION_STATUSES)[number]
export type RouteChange = z.infer<typeof routeChangeSchema>
export type PlanResult = z.infer<typeof planResultSchema>
export type CreateDeploymentInput = z.input<typeof createDeploymentSchema>
export type PublishInput = z.input<typeof publishSchema>
export type PublishByNameInput = z.input<typeof publishByNameSchema>
export type PlanInput = z.input<typeof planSchema>
export type RollbackInput = z.input<typeof rollbackSchema>
export type PromoteInput = z.input<typeof promoteSchema>
