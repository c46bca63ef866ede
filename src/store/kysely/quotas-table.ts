import { sql } from 'kysely'
import type { Kysely } from 'kysely'
import type { QuotaOverrides } from '../../schemas/quotas.js'
import type { OrgScope, QuotaStore, QuotaUsagePart, QuotaUsageRecord } from '../store.js'
import type { AnyDatabase } from './table.js'

// Quota limits (one row per organization or workspace that overrides any) and the use they
// are checked against, counted with one aggregate query per table: nothing is kept in step
// by hand, so a crash can never leave a counter wrong.

const TABLE = 'quota_limits'
const RUNNING = ['creating', 'running', 'snapshotting']
const EXISTING = ['creating', 'running', 'paused', 'snapshotting']

export class QuotasTable implements QuotaStore {
  constructor(private readonly db: Kysely<AnyDatabase>) {}

  async getLimits(scope: OrgScope, workspaceId: string | null): Promise<QuotaOverrides> {
    const row = await this.db
      .selectFrom(TABLE)
      .select('limits')
      .where('subject_id', '=', workspaceId ?? scope.organization_id)
      .where('organization_id', '=', scope.organization_id)
      .executeTakeFirst()
    if (row === undefined) return {}
    return (typeof row.limits === 'string' ? JSON.parse(row.limits) : row.limits) as QuotaOverrides
  }

  async getLimitsOf(scope: OrgScope, workspaceId: string): Promise<{ organization: QuotaOverrides; workspace: QuotaOverrides }> {
    const rows = await this.db
      .selectFrom(TABLE)
      .select(['subject_id', 'limits'])
      .where('subject_id', 'in', [scope.organization_id, workspaceId])
      .where('organization_id', '=', scope.organization_id)
      .execute()
    const of = (id: string): QuotaOverrides => {
      const row = rows.find((r) => r.subject_id === id)
      return row === undefined ? {} : ((typeof row.limits === 'string' ? JSON.parse(row.limits) : row.limits) as QuotaOverrides)
    }
    return { organization: of(scope.organization_id), workspace: of(workspaceId) }
  }

  async setLimits(scope: OrgScope, workspaceId: string | null, limits: QuotaOverrides, updatedAt: string): Promise<void> {
    const values = { limits: JSON.stringify(limits), updated_at: updatedAt }
    await this.db
      .insertInto(TABLE)
      .values({ subject_id: workspaceId ?? scope.organization_id, organization_id: scope.organization_id, workspace_id: workspaceId, ...values })
      // Never another organization's row, whatever id was passed.
      .onConflict((oc) => oc.column('subject_id').doUpdateSet(values).where(`${TABLE}.organization_id`, '=', scope.organization_id))
      .execute()
  }

  async deleteWorkspaceLimits(scope: OrgScope, workspaceId: string): Promise<void> {
    await this.db.deleteFrom(TABLE).where('subject_id', '=', workspaceId).where('organization_id', '=', scope.organization_id).execute()
  }

  async usage(scope: OrgScope, workspaceId?: string, parts?: ReadonlySet<QuotaUsagePart>): Promise<QuotaUsageRecord> {
    const wanted = (part: QuotaUsagePart) => parts === undefined || parts.has(part)
    const none = Promise.resolve({} as Record<string, unknown>)
    // Rows of the organization, or of the one workspace.
    const rows = (table: string) => {
      const q = this.db.selectFrom(table).where(`${table}.organization_id`, '=', scope.organization_id)
      return workspaceId === undefined ? q : q.where(`${table}.workspace_id`, '=', workspaceId)
    }
    const running = sql.join(RUNNING.map((s) => sql.lit(s)))
    const count = sql<number>`count(*)`.as('n')
    const [sandboxes, instances, builds, deployments, snapshots, releases] = await Promise.all([
      !wanted('sandboxes') ? none : rows('sandboxes')
        .select([
          sql<number>`count(*)`.as('total'),
          sql<number>`sum(case when state in (${running}) then 1 else 0 end)`.as('running'),
          sql<number>`sum(case when state in (${running}) then cpu else 0 end)`.as('cpu'),
          sql<number>`sum(case when state in (${running}) then memory_mb else 0 end)`.as('memory'),
        ])
        .where('state', 'in', EXISTING)
        .executeTakeFirstOrThrow(),
      !wanted('instances')
        ? none
        : rows('instances')
            .select([
              count,
              // What scaling asked for, whether or not the reconciler has started it yet.
              rows('deployments')
                .innerJoin('deployment_routes', 'deployment_routes.deployment_id', 'deployments.id')
                .innerJoin('versions', 'versions.id', 'deployment_routes.active_version_id')
                .where('versions.release_kind', '=', 'dynamic')
                .select(sql<number>`coalesce(sum(deployments.instances), 0)`.as('desired'))
                .$asScalar()
                .as('desired'),
            ])
            .executeTakeFirstOrThrow(),
      !wanted('builds') ? none : rows('versions').select(count).where('status', '=', 'building').executeTakeFirstOrThrow(),
      !wanted('deployments') ? none : rows('deployments').select(count).executeTakeFirstOrThrow(),
      !wanted('storage') ? none : rows('snapshots').select(sql<number>`sum(size_bytes)`.as('n')).where('state', '=', 'ready').executeTakeFirstOrThrow(),
      // A release shared by several versions (or deployments) counts once.
      !wanted('storage') ? none : this.db
        .selectFrom('releases')
        .select(sql<number>`sum(size_bytes)`.as('n'))
        .where('sha256', 'in', rows('versions').select('versions.release_sha256').where('versions.release_sha256', 'is not', null))
        .executeTakeFirstOrThrow(),
    ])
    return {
      running_sandboxes: num(sandboxes.running),
      sandboxes: num(sandboxes.total),
      sandbox_vcpus: num(sandboxes.cpu),
      sandbox_memory_mb: num(sandboxes.memory),
      instances: num(instances.n),
      desired_instances: num(instances.desired),
      builds: num(builds.n),
      deployments: num(deployments.n),
      snapshot_bytes: num(snapshots.n),
      release_bytes: num(releases.n),
    }
  }
}

/** PostgreSQL answers counts and sums as strings (bigint, numeric), and a sum of nothing as null. */
function num(value: unknown): number {
  return value === null || value === undefined ? 0 : Number(value)
}
