import { sql } from 'kysely'
import type { Kysely } from 'kysely'
import { MiosaError, notFound } from '../../core/errors.js'
import type {
  DeploymentRecord,
  DeploymentRouteRecord,
  DeploymentRoutesStore,
  InstanceEventRecord,
  InstanceRecord,
  OrgScope,
  ReleaseRecord,
  RouteChangeRecord,
  RouteChangeRequest,
  Store,
  VersionRecord,
} from '../store.js'
import { KyselyTable } from './table.js'
import type { AnyDatabase, Dialect, TableSpec } from './table.js'

// Publishing's tables. Deployments, versions and route changes are ordinary tables; what is
// special is done here in one transaction each: taking a version number with the version's
// insert, and re-pointing a route with the record of the change. Both first write the
// deployment's row, which serialises them per deployment on PostgreSQL (a row lock) as
// SQLite's single writer does anyway.

const ATTRIBUTION = ['external_user_id', 'external_project_id', 'external_workspace_id', 'metadata'] as const

export const deploymentsSpec: TableSpec<DeploymentRecord> = {
  name: 'deployments',
  kind: 'deployment',
  columns: [
    'id', 'organization_id', 'workspace_id', 'project_id', 'name', 'slug', 'spa_fallback', 'instances', 'health_check', 'deploy_timeout_seconds',
    'drain_timeout_seconds', ...ATTRIBUTION, 'created_at', 'updated_at',
  ],
  jsonColumns: ['metadata', 'health_check'],
  booleanColumns: ['spa_fallback'],
}

export const versionsSpec: TableSpec<VersionRecord> = {
  name: 'versions',
  kind: 'version',
  columns: [
    'id', 'organization_id', 'workspace_id', 'deployment_id', 'environment', 'version_number', 'status', 'error', 'error_details', 'kind', 'plan',
    'source_sha256', 'release_sha256', 'release_kind', 'sandbox_id', 'logs', 'created_by', ...ATTRIBUTION, 'created_at', 'updated_at',
    'finished_at',
  ],
  jsonColumns: ['metadata', 'plan', 'error_details'],
  bigintColumns: ['version_number'],
}

export const instancesSpec: TableSpec<InstanceRecord> = {
  name: 'instances',
  kind: 'instance',
  columns: [
    'id', 'organization_id', 'workspace_id', 'deployment_id', 'environment', 'version_id', 'version_number', 'state', 'runtime_ref', 'address',
    'exit_code', 'created_at', 'updated_at', 'healthy_at',
  ],
  jsonColumns: ['runtime_ref', 'address'],
}

export const instanceEventsSpec: TableSpec<InstanceEventRecord> = {
  name: 'instance_events',
  kind: 'instance event',
  columns: ['id', 'organization_id', 'deployment_id', 'environment', 'instance_id', 'version_id', 'type', 'message', 'details', 'created_at'],
  jsonColumns: ['details'],
}

export function instancesTable(db: Kysely<AnyDatabase>, dialect: Dialect): Store['instances'] {
  const table = new KyselyTable<InstanceRecord, OrgScope>(db, dialect, instancesSpec)
  return Object.assign(table, { findAllUnscoped: () => table.findWhereUnscoped({}, 100_000) })
}

export const routeChangesSpec: TableSpec<RouteChangeRecord> = {
  name: 'route_changes',
  kind: 'route change',
  columns: ['id', 'organization_id', 'deployment_id', 'environment', 'from_version_id', 'to_version_id', 'reason', 'actor', 'created_at'],
}

/** Runs `fn` in a transaction, or in the caller's when there is one already. */
function inTransaction<R>(db: Kysely<AnyDatabase>, fn: (trx: Kysely<AnyDatabase>) => Promise<R>): Promise<R> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn)
}

export function deploymentsTable(db: Kysely<AnyDatabase>, dialect: Dialect): Store['deployments'] {
  const table = new KyselyTable<DeploymentRecord, OrgScope>(db, dialect, deploymentsSpec)
  return Object.assign(table, {
    findByHost: async (workspaceSlug: string, deploymentSlug: string) => {
      const workspace = await db.selectFrom('workspaces').select('id').where('slug', '=', workspaceSlug).executeTakeFirst()
      if (workspace === undefined) return undefined
      const [row] = await table.findWhereUnscoped({ workspace_id: String(workspace.id), slug: deploymentSlug }, 1)
      return row
    },
    findByIds: (ids: readonly string[]) => (ids.length === 0 ? Promise.resolve([]) : table.findInUnscoped('id', ids)),
  })
}

export function versionsTable(db: Kysely<AnyDatabase>, dialect: Dialect): Store['versions'] {
  const table = new KyselyTable<VersionRecord, OrgScope>(db, dialect, versionsSpec)
  return Object.assign(table, {
    insertNext: (row: Omit<VersionRecord, 'version_number'>) =>
      inTransaction(db, async (trx) => {
        const bumped = await trx
          .updateTable('deployments')
          .set({ next_version: sql`next_version + 1` })
          .where('id', '=', row.deployment_id)
          .where('organization_id', '=', row.organization_id)
          .returning('next_version')
          .executeTakeFirst()
        if (bumped === undefined) throw notFound('deployment', row.deployment_id)
        const record: VersionRecord = { ...row, version_number: Number(bumped.next_version) }
        return new KyselyTable<VersionRecord, OrgScope>(trx, dialect, versionsSpec).insert(record)
      }),
    findInStatuses: (statuses: readonly VersionRecord['status'][]) => table.findInUnscoped('status', statuses),
    findById: (id: string) => table.findUnscoped('id', id),
  })
}

export class DeploymentRoutesTable implements DeploymentRoutesStore {
  constructor(
    private readonly db: Kysely<AnyDatabase>,
    private readonly dialect: Dialect,
  ) {}

  async list(scope: OrgScope, deploymentId: string): Promise<DeploymentRouteRecord[]> {
    const rows = await this.db
      .selectFrom('deployment_routes')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .where('organization_id', '=', scope.organization_id)
      .orderBy('environment')
      .execute()
    return rows.map(decodeRoute)
  }

  async get(scope: OrgScope, deploymentId: string, environment: string): Promise<DeploymentRouteRecord | undefined> {
    const row = await this.db
      .selectFrom('deployment_routes')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .where('environment', '=', environment)
      .where('organization_id', '=', scope.organization_id)
      .executeTakeFirst()
    return row === undefined ? undefined : decodeRoute(row)
  }

  async findUnscoped(deploymentId: string, environment: string): Promise<DeploymentRouteRecord | undefined> {
    const row = await this.db
      .selectFrom('deployment_routes')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .where('environment', '=', environment)
      .executeTakeFirst()
    return row === undefined ? undefined : decodeRoute(row)
  }

  async findAllActive(): Promise<DeploymentRouteRecord[]> {
    const rows = await this.db.selectFrom('deployment_routes').selectAll().where('active_version_id', 'is not', null).execute()
    return rows.map(decodeRoute)
  }

  repoint(scope: OrgScope, change: RouteChangeRequest, opts: { onlyIfNewer?: boolean } = {}): Promise<RouteChangeRecord | undefined> {
    return inTransaction(this.db, async (trx) => {
      // Writing the deployment's row first serialises every route change of this deployment.
      const touched = await trx
        .updateTable('deployments')
        .set({ updated_at: change.created_at })
        .where('id', '=', change.deployment_id)
        .where('organization_id', '=', scope.organization_id)
        .returning('id')
        .executeTakeFirst()
      if (touched === undefined) throw notFound('deployment', change.deployment_id)
      const versions = new KyselyTable<VersionRecord, OrgScope>(trx, this.dialect, versionsSpec)
      const target = await versions.get(scope, change.to_version_id)
      if (target === undefined || target.deployment_id !== change.deployment_id) throw notFound('version', change.to_version_id)
      if (target.status !== 'ready') {
        throw new MiosaError('conflict', `version ${target.version_number} (${target.id}) is ${target.status}: only a ready version can be served`, {
          details: { field: 'version_id', status: target.status },
        })
      }
      const current = await new DeploymentRoutesTable(trx, this.dialect).get(scope, change.deployment_id, change.environment)
      const from = current?.active_version_id ?? null
      if (opts.onlyIfNewer === true && from !== null) {
        const serving = await versions.get(scope, from)
        if (serving !== undefined && serving.version_number > target.version_number) return undefined
      }
      await trx
        .insertInto('deployment_routes')
        .values({
          deployment_id: change.deployment_id,
          environment: change.environment,
          organization_id: scope.organization_id,
          active_version_id: change.to_version_id,
          updated_at: change.created_at,
        })
        .onConflict((oc) => oc.columns(['deployment_id', 'environment']).doUpdateSet({ active_version_id: change.to_version_id, updated_at: change.created_at }))
        .execute()
      const record: RouteChangeRecord = { ...change, organization_id: scope.organization_id, from_version_id: from }
      await new KyselyTable<RouteChangeRecord, OrgScope>(trx, this.dialect, routeChangesSpec).insert(record)
      return record
    })
  }

  async deleteForEnvironment(scope: OrgScope, projectId: string, environment: string): Promise<number> {
    const result = await this.db
      .deleteFrom('deployment_routes')
      .where('organization_id', '=', scope.organization_id)
      .where('environment', '=', environment)
      .where('deployment_id', 'in', this.db.selectFrom('deployments').select('id').where('project_id', '=', projectId).where('organization_id', '=', scope.organization_id))
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

export function releasesTable(db: Kysely<AnyDatabase>): Store['releases'] {
  const decode = (row: Record<string, unknown>): ReleaseRecord => ({
    sha256: String(row.sha256),
    kind: row.kind as ReleaseRecord['kind'],
    size_bytes: Number(row.size_bytes),
    archive_sha256: row.archive_sha256 === null || row.archive_sha256 === undefined ? null : String(row.archive_sha256),
    created_at: String(row.created_at),
  })
  const get = async (sha256: string): Promise<ReleaseRecord | undefined> => {
    const row = await db.selectFrom('releases').selectAll().where('sha256', '=', sha256).executeTakeFirst()
    return row === undefined ? undefined : decode(row)
  }
  return {
    get,
    put: async (row) => {
      await db.insertInto('releases').values({ ...row, archive_sha256: row.archive_sha256 ?? null }).onConflict((oc) => oc.column('sha256').doNothing()).execute()
      return (await get(row.sha256)) ?? row
    },
    setArchive: async (sha256, archiveSha256) => {
      await db.updateTable('releases').set({ archive_sha256: archiveSha256 }).where('sha256', '=', sha256).where('archive_sha256', 'is', null).execute()
    },
    findUnarchived: async () => {
      const rows = await db.selectFrom('releases').selectAll().where('kind', '=', 'dynamic').where('archive_sha256', 'is', null).execute()
      return rows.map(decode)
    },
  }
}

function decodeRoute(row: Record<string, unknown>): DeploymentRouteRecord {
  return {
    deployment_id: String(row.deployment_id),
    environment: String(row.environment),
    organization_id: String(row.organization_id),
    active_version_id: row.active_version_id === null || row.active_version_id === undefined ? null : String(row.active_version_id),
    updated_at: String(row.updated_at),
  }
}
