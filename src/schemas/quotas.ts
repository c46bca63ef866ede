import { z } from 'zod'

// Quotas: what an organization (and each of its workspaces) may hold at once. Limits are
// set per resource; a missing one falls back to the level above (workspace → organization
// → the platform default from the server's flags).

export const QUOTA_RESOURCES = [
  'running_sandboxes',
  'sandboxes',
  'vcpus',
  'memory_mb',
  'concurrent_builds',
  'storage_gb',
  'deployments',
  'computers',
  'docker_deploy_hosts',
] as const

export type QuotaResource = (typeof QUOTA_RESOURCES)[number]

/** A full set of limits: one number per resource. */
export type QuotaLimits = Record<QuotaResource, number>

/** Limits as stored for an organization or a workspace: only the resources it overrides. */
export type QuotaOverrides = Partial<QuotaLimits>

const DESCRIPTIONS: Record<QuotaResource, string> = {
  running_sandboxes: 'Sandboxes with compute attached (creating, running, snapshotting)',
  sandboxes: 'Sandboxes that exist (every state but destroyed and error)',
  vcpus: 'vCPUs of running sandboxes and runtime instances',
  memory_mb: 'Memory (MiB) of running sandboxes and runtime instances',
  concurrent_builds: 'Builds in progress (publish, deploy)',
  storage_gb: 'GiB of snapshots and of the releases versions reference',
  deployments: 'Deployments',
  computers: 'Computers (desktop sessions)',
  docker_deploy_hosts: 'Docker Deploy hosts',
}

const INTEGER_RESOURCES: readonly QuotaResource[] = ['running_sandboxes', 'sandboxes', 'memory_mb', 'concurrent_builds', 'deployments', 'computers', 'docker_deploy_hosts']

export const QUOTA_LIMIT_MAX = 1_000_000_000

function limitValue(resource: QuotaResource) {
  const base = z.number().min(0).max(QUOTA_LIMIT_MAX)
  return (INTEGER_RESOURCES.includes(resource) ? base.int() : base).meta({ description: DESCRIPTIONS[resource] })
}

/** A change of limits: a number sets one, null goes back to the level above, a missing key keeps it. */
export const limitsPatchSchema = z
  .strictObject(Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, limitValue(r).nullable().optional()])) as Record<QuotaResource, z.ZodOptional<z.ZodNullable<z.ZodNumber>>>)
  .meta({ id: 'LimitsPatch', description: 'Per resource: a number sets the limit, null returns it to the default (the organization\'s for a workspace, the platform\'s for an organization)' })

export type LimitsPatch = z.infer<typeof limitsPatchSchema>

export const updateOrganizationSchema = z.strictObject({ limits: limitsPatchSchema.optional() })

const quotaLineSchema = z
  .object({
    limit: z.number(),
    used: z.number(),
    source: z.enum(['platform', 'organization', 'workspace']).meta({ description: 'Where the limit comes from' }),
  })
  .meta({ id: 'QuotaLine' })

export const limitsReportSchema = z
  .object({
    organization_id: z.string(),
    workspace_id: z.string().nullable(),
    resources: z.strictObject(Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, quotaLineSchema])) as Record<QuotaResource, typeof quotaLineSchema>),
    /** What use is not counted yet. */
    notes: z.array(z.string()),
  })
  .meta({ id: 'Limits' })

export type LimitsReport = z.infer<typeof limitsReportSchema>
