import { z } from 'zod'
import { attributionInput, attributionOutput, idOf, listQuery, nameSchema, slugSchema, timestamp } from './common.js'
import { environmentNameSchema } from './environments.js'
import { queryFlag } from './sandboxes.js'

// Publishing: a deployment (the stable app with its managed URL), its versions (one per
// publish, numbered per deployment), and the route of each environment to its active
// version, whose every change is recorded.

export const PUBLISH_KINDS = ['auto', 'static', 'dynamic'] as const
export const VERSION_STATUSES = ['building', 'ready', 'failed', 'archived'] as const
export const ROUTE_CHANGE_REASONS = ['publish', 'rollback', 'promote'] as const
export const DEFAULT_ENVIRONMENT = 'production'

/** An environment name: `production`, `staging`, `qa`, `preview/pr-42` (see schemas/environments.ts). */
export const environmentSchema = environmentNameSchema

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
    release: z.array(z.string()).nullable().optional().meta({ description: "A Procfile `release:` command, run once before the version goes live" }),
    spa_fallback: z.boolean(),
    reasons: z.array(z.string()),
  })
  .meta({ id: 'BuildPlan' })

export const healthCheckSchema = z
  .object({
    path: z
      .string()
      .max(1000)
      .regex(/^\/[^\s]*$/, 'must be a path starting with /')
      .nullable()
      .meta({ description: 'HTTP GET this path and expect a 2xx or 3xx; null: a TCP connect to PORT' }),
    interval_seconds: z.number().min(0.2).max(300).meta({ description: 'Time between checks of one instance' }),
    timeout_seconds: z.number().min(0.1).max(60).meta({ description: 'How long one check may take' }),
    grace_seconds: z.number().min(0).max(3600).meta({ description: 'How long a new instance may take to become healthy before failing checks count' }),
  })
  .meta({ id: 'HealthCheck' })

/** A deployment's runtime settings until it says otherwise. */
export const DEFAULT_RUNTIME_SETTINGS = {
  instances: 1,
  health_check: { path: null, interval_seconds: 2, timeout_seconds: 2, grace_seconds: 30 } as HealthCheck,
  deploy_timeout_seconds: 120,
  drain_timeout_seconds: 30,
}

export const deploymentRouteSchema = z
  .object({
    environment: z.string(),
    url: z
      .string()
      .nullable()
      .meta({ description: "The environment's managed URL (production: `<deployment>.<workspace>.<base-domain>`, others: `<deployment>--<environment-slug>.<workspace>.<base-domain>`); null for a route left to an environment that no longer exists" }),
    active_version_id: z.string().nullable().meta({ description: 'null until a version is published or promoted there' }),
    updated_at: timestamp.nullable().meta({ description: 'When the route last changed; null if it never has' }),
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
    routes: z.array(deploymentRouteSchema).meta({ description: "Every environment of the deployment (its project's, or production and staging outside a project), production first, with its URL and active version" }),
    instances: z.number().int().meta({ description: 'Desired runtime instances per environment (dynamic versions)' }),
    health_check: healthCheckSchema,
    deploy_timeout_seconds: z.number().int().meta({ description: "How long a new version's instances may take to become healthy before the version fails" }),
    drain_timeout_seconds: z.number().int().meta({ description: 'How long a replaced instance may finish in-flight requests before it is stopped' }),
    ...attributionOutput,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Deployment' })

/** Why a version failed, beyond its one-line `error`: what the build or the app printed last. */
export const versionErrorDetailsSchema = z
  .object({
    output: z.array(z.string()).meta({ description: "The last lines (up to 50) of the failing step's own output, secrets masked: the build's, or the app's stdout/stderr when its instances never became healthy" }),
    source: z.enum(['build', 'app']).meta({ description: 'Whose output it is: the build (install, build, image build) or the app started from the release' }),
    port: z.number().int().nullable().meta({ description: 'The port the app was expected to listen on (a failed rollout), else null' }),
    logs_command: z.string().meta({ description: 'The CLI command that prints the whole build log' }),
  })
  .meta({ id: 'VersionErrorDetails' })

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
    error_details: versionErrorDetailsSchema.nullable().meta({ description: 'A failed version: the last lines of output that say why, and how to read the whole log' }),
    kind: z.enum(PUBLISH_KINDS).meta({ description: 'The kind asked for at publish time' }),
    plan: buildPlanSchema.nullable(),
    source_sha256: shaSchema.meta({ description: 'sha256 of the source snapshot (the workspace as it was at publish time)' }),
    release_sha256: shaSchema.meta({ description: 'sha256 of the release (the immutable build output)' }),
    release_kind: z.enum(['static', 'dynamic']).nullable(),
    sandbox_id: z.string().nullable(),
    created_by: z.string().meta({ description: 'The API key id that published it' }),
    url: z.string().meta({ description: 'The managed URL of the environment it was published to' }),
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

const runtimeSettingsFields = {
  instances: z.number().int().min(0).max(20).optional().meta({ description: 'Desired runtime instances per environment (default 1; 0 stops them)' }),
  health_check: healthCheckSchema.partial().strict().optional(),
  deploy_timeout_seconds: z.number().int().min(1).max(3600).optional(),
  drain_timeout_seconds: z.number().int().min(0).max(3600).optional(),
}

export const createDeploymentSchema = z.strictObject({
  name: nameSchema,
  slug: slugSchema.optional().meta({ description: 'Default: made from the name' }),
  workspace_id: idOf('workspace').optional().meta({ description: "Default: the organization's first workspace" }),
  project_id: idOf('project').optional(),
  spa_fallback: z.boolean().optional(),
  ...runtimeSettingsFields,
  ...attributionInput,
})

export const updateDeploymentSchema = z
  .strictObject({ name: nameSchema.optional(), spa_fallback: z.boolean().optional(), ...runtimeSettingsFields })
  .refine((v) => Object.keys(v).length > 0, { message: 'give at least one field to change' })

export const INSTANCE_STATES = ['starting', 'healthy', 'unhealthy', 'draining'] as const

export const instanceSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    deployment_id: z.string(),
    environment: z.string(),
    version_id: z.string(),
    version_number: z.number().int(),
    state: z.enum(INSTANCE_STATES).meta({ description: 'starting (not serving yet), healthy (serving), unhealthy (being replaced), draining (finishing requests, then stopped)' }),
    exit_code: z.number().int().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    healthy_at: timestamp.nullable(),
  })
  .meta({ id: 'Instance' })

export const INSTANCE_EVENT_TYPES = [
  'started',
  'healthy',
  'unhealthy',
  'exited',
  'draining',
  'stopped',
  'adopted',
  'orphan_removed',
  'backoff',
  'release_command',
  'rollout_failed',
] as const

export const instanceEventSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    deployment_id: z.string(),
    environment: z.string(),
    instance_id: z.string().nullable(),
    version_id: z.string().nullable(),
    type: z.enum(INSTANCE_EVENT_TYPES),
    message: z.string(),
    details: z.record(z.string(), z.unknown()),
    created_at: timestamp,
  })
  .meta({ id: 'InstanceEvent' })

export const instancesResultSchema = z
  .object({
    environment: z.string(),
    desired: z.number().int(),
    active_version_id: z.string().nullable(),
    data: z.array(instanceSchema),
    events: z.array(instanceEventSchema).meta({ description: 'The newest events first (the reconciler decisions)' }),
    crash_loop: z
      .object({ failures: z.number().int(), next_start_at: timestamp.nullable(), last_exit_code: z.number().int().nullable(), last_logs: z.array(z.string()) })
      .nullable()
      .meta({ description: 'Set while instances of the active version keep failing: why, and when the next start is' }),
  })
  .meta({ id: 'Instances' })

export const instancesQuery = z.strictObject({
  environment: environmentSchema.default(DEFAULT_ENVIRONMENT),
  events: z.coerce.number().int().min(0).max(200).default(20).meta({ description: 'How many of the newest events to include' }),
})

export const restartSchema = z.strictObject({ environment: environmentSchema.default(DEFAULT_ENVIRONMENT) })

export const runtimeLogsQuery = z.strictObject({
  environment: environmentSchema.default(DEFAULT_ENVIRONMENT),
  follow: queryFlag('Server-sent events: the last lines, then each new one as it is written'),
  tail: z.coerce.number().int().min(0).max(10_000).default(100).meta({ description: 'Lines per instance from before now' }),
})

export const runtimeLogEventSchema = z.object({
  instance_id: z.string(),
  stream: z.enum(['stdout', 'stderr']),
  timestamp,
  line: z.string(),
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
export type HealthCheck = z.infer<typeof healthCheckSchema>
export type Instance = z.infer<typeof instanceSchema>
export type InstanceState = (typeof INSTANCE_STATES)[number]
export type InstanceEvent = z.infer<typeof instanceEventSchema>
export type InstanceEventType = (typeof INSTANCE_EVENT_TYPES)[number]
export type InstancesResult = z.infer<typeof instancesResultSchema>
export type RuntimeLogEvent = z.infer<typeof runtimeLogEventSchema>
export type UpdateDeploymentInput = z.input<typeof updateDeploymentSchema>
export type DeploymentRoute = z.infer<typeof deploymentRouteSchema>
export type Version = z.infer<typeof versionSchema>
export type VersionErrorDetails = z.infer<typeof versionErrorDetailsSchema>
export type VersionStatus = (typeof VERSION_STATUSES)[number]
export type RouteChange = z.infer<typeof routeChangeSchema>
export type PlanResult = z.infer<typeof planResultSchema>
export type CreateDeploymentInput = z.input<typeof createDeploymentSchema>
export type PublishInput = z.input<typeof publishSchema>
export type PublishByNameInput = z.input<typeof publishByNameSchema>
export type PlanInput = z.input<typeof planSchema>
export type RollbackInput = z.input<typeof rollbackSchema>
export type PromoteInput = z.input<typeof promoteSchema>
