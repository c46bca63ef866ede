import { Migrator } from 'kysely'
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type {
  ApiKeyRecord,
  BackgroundServiceRecord,
  OrgScope,
  PlatformScope,
  PreviewTokenRecord,
  RouteChangeRecord,
  InstanceEventRecord,
  SandboxRecord,
  ShareTokenRecord,
  SnapshotRecord,
  Store,
} from '../store.js'
import type { Organization } from '../../schemas/organizations.js'
import type { Project } from '../../schemas/projects.js'
import type { Workspace } from '../../schemas/workspaces.js'
import { migrations } from '../migrations/index.js'
import { KyselyTable } from './table.js'
import { TenantSettingsTable } from './tenant-settings-table.js'
import { environmentsTable } from './environments-table.js'
import { EnvVarsTable } from './env-vars-table.js'
import { QuotasTable } from './quotas-table.js'
import { DeploymentRoutesTable, deploymentsTable, instanceEventsSpec, instancesTable, releasesTable, routeChangesSpec, versionsTable } from './deployment-tables.js'
import type { AnyDatabase, Dialect, TableSpec } from './table.js'

const ATTRIBUTION = ['external_user_id', 'external_project_id', 'external_workspace_id', 'metadata'] as const

const organizations: TableSpec<Organization> = {
  name: 'organizations',
  kind: 'organization',
  columns: ['id', 'name', 'slug', ...ATTRIBUTION, 'created_at', 'updated_at'],
  jsonColumns: ['metadata'],
}

const apiKeys: TableSpec<ApiKeyRecord> = {
  name: 'api_keys',
  kind: 'API key',
  columns: ['id', 'organization_id', 'name', 'prefix', 'hash', ...ATTRIBUTION, 'created_at', 'last_used_at', 'revoked_at'],
  jsonColumns: ['metadata'],
}

const workspaces: TableSpec<Workspace> = {
  name: 'workspaces',
  kind: 'workspace',
  columns: ['id', 'organization_id', 'name', 'slug', ...ATTRIBUTION, 'created_at', 'updated_at'],
  jsonColumns: ['metadata'],
}

const projects: TableSpec<Project> = {
  name: 'projects',
  kind: 'project',
  columns: ['id', 'organization_id', 'workspace_id', 'name', 'slug', ...ATTRIBUTION, 'created_at', 'updated_at'],
  jsonColumns: ['metadata'],
}

const sandboxes: TableSpec<SandboxRecord> = {
  name: 'sandboxes',
  kind: 'sandbox',
  columns: [
    'id', 'organization_id', 'workspace_id', 'project_id', 'name', 'slug', 'template', 'state', 'error', 'persistent',
    'timeout_seconds', 'cpu', 'memory_mb', 'env', 'snapshot_id', 'forked_from', 'runtime_ref', 'base_ref',
    'last_activity_at', 'preview_public', 'deployment_id', 'environment', 'egress', ...ATTRIBUTION, 'created_at', 'updated_at', 'destroyed_at',
  ],
  jsonColumns: ['metadata', 'env', 'runtime_ref', 'base_ref', 'egress'],
  booleanColumns: ['persistent', 'preview_public'],
}

const snapshots: TableSpec<SnapshotRecord> = {
  name: 'snapshots',
  kind: 'snapshot',
  columns: [
    'id', 'organization_id', 'workspace_id', 'sandbox_id', 'name', 'state', 'error', 'size_bytes', 'template', 'runtime_ref',
    ...ATTRIBUTION, 'created_at', 'updated_at',
  ],
  jsonColumns: ['metadata', 'runtime_ref'],
  bigintColumns: ['size_bytes'],
}

const backgroundServices: TableSpec<BackgroundServiceRecord> = {
  name: 'sandbox_services',
  kind: 'service',
  columns: ['id', 'organization_id', 'sandbox_id', 'cmd', 'cwd', 'env', 'log_path', 'created_at', 'started_at'],
  jsonColumns: ['cmd', 'env'],
}

const previewTokens: TableSpec<PreviewTokenRecord> = {
  name: 'preview_tokens',
  kind: 'preview token',
  columns: ['id', 'organization_id', 'workspace_id', 'sandbox_id', 'port', 'expires_at', 'revoked_at', ...ATTRIBUTION, 'created_at'],
  jsonColumns: ['metadata'],
}

const shareTokens: TableSpec<ShareTokenRecord> = {
  name: 'share_tokens',
  kind: 'share token',
  columns: [
    'id', 'organization_id', 'workspace_id', 'sandbox_id', 'port', 'name', 'token_hash', 'token_prefix', 'password_hash',
    'expires_at', 'revoked_at', ...ATTRIBUTION, 'created_at',
  ],
  jsonColumns: ['metadata'],
}

/** The Store on Kysely: the same code for SQLite and PostgreSQL; only the dialect differs. */
export class KyselyStore implements Store {
  readonly organizations: KyselyTable<Organization, PlatformScope>
  readonly apiKeys: KyselyTable<ApiKeyRecord, OrgScope> & { findByHash(hash: string): Promise<ApiKeyRecord | undefined> }
  readonly workspaces: KyselyTable<Workspace, OrgScope>
  readonly projects: KyselyTable<Project, OrgScope>
  readonly environments: Store['environments']
  readonly sandboxes: KyselyTable<SandboxRecord, OrgScope> & Pick<Store['sandboxes'], 'findInStates' | 'findByIds' | 'findBySlug'>
  readonly snapshots: KyselyTable<SnapshotRecord, OrgScope>
  readonly backgroundServices: KyselyTable<BackgroundServiceRecord, OrgScope>
  readonly previewTokens: KyselyTable<PreviewTokenRecord, OrgScope> & Pick<Store['previewTokens'], 'findById'>
  readonly shareTokens: KyselyTable<ShareTokenRecord, OrgScope> & Pick<Store['shareTokens'], 'findById' | 'findByHash'>
  readonly tenantSettings: TenantSettingsTable
  readonly deployments: Store['deployments']
  readonly deploymentRoutes: DeploymentRoutesTable
  readonly versions: Store['versions']
  readonly releases: Store['releases']
  readonly routeChanges: KyselyTable<RouteChangeRecord, OrgScope>
  readonly instances: Store['instances']
  readonly instanceEvents: KyselyTable<InstanceEventRecord, OrgScope>
  readonly envVars: EnvVarsTable
  readonly quotas: QuotasTable
  readonly settings: Store['settings']

  constructor(
    private readonly db: Kysely<AnyDatabase>,
    readonly dialect: Dialect,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {
    this.organizations = new KyselyTable(db, dialect, organizations)
    const keys = new KyselyTable<ApiKeyRecord, OrgScope>(db, dialect, apiKeys)
    this.apiKeys = Object.assign(keys, { findByHash: (hash: string) => keys.findUnscoped('hash', hash) })
    this.workspaces = new KyselyTable(db, dialect, workspaces)
    this.projects = new KyselyTable(db, dialect, projects)
    this.environments = environmentsTable(db, dialect)
    const sandboxTable = new KyselyTable<SandboxRecord, OrgScope>(db, dialect, sandboxes)
    this.sandboxes = Object.assign(sandboxTable, {
      findInStates: (states: readonly SandboxRecord['state'][]) => sandboxTable.findInUnscoped('state', states),
      findByIds: (ids: readonly string[]) => sandboxTable.findInUnscoped('id', ids),
      findBySlug: async (slug: string, states: readonly SandboxRecord['state'][]) => {
        // Slugs are unique, so this is one row at most.
        const row = await sandboxTable.findUnscoped('slug', slug)
        return row !== undefined && states.includes(row.state) ? row : undefined
      },
    })
    this.snapshots = new KyselyTable(db, dialect, snapshots)
    this.backgroundServices = new KyselyTable(db, dialect, backgroundServices)
    const previewTokenTable = new KyselyTable<PreviewTokenRecord, OrgScope>(db, dialect, previewTokens)
    this.previewTokens = Object.assign(previewTokenTable, { findById: (id: string) => previewTokenTable.findUnscoped('id', id) })
    const shareTokenTable = new KyselyTable<ShareTokenRecord, OrgScope>(db, dialect, shareTokens)
    this.shareTokens = Object.assign(shareTokenTable, {
      findById: (id: string) => shareTokenTable.findUnscoped('id', id),
      findByHash: (hash: string) => shareTokenTable.findUnscoped('token_hash', hash),
    })
    this.tenantSettings = new TenantSettingsTable(db)
    this.deployments = deploymentsTable(db, dialect)
    this.deploymentRoutes = new DeploymentRoutesTable(db, dialect)
    this.versions = versionsTable(db, dialect)
    this.releases = releasesTable(db)
    this.routeChanges = new KyselyTable(db, dialect, routeChangesSpec)
    this.instances = instancesTable(db, dialect)
    this.instanceEvents = new KyselyTable(db, dialect, instanceEventsSpec)
    this.envVars = new EnvVarsTable(db)
    this.quotas = new QuotasTable(db)
    this.settings = {
      get: async (key) => {
        const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst()
        return row === undefined ? undefined : String(row.value)
      },
      set: async (key, value) => {
        await db
          .insertInto('settings')
          .values({ key, value })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
          .execute()
      },
      setIfAbsent: async (key, value) => {
        await db
          .insertInto('settings')
          .values({ key, value })
          .onConflict((oc) => oc.column('key').doNothing())
          .execute()
        const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirstOrThrow()
        return String(row.value)
      },
    }
  }

  async transaction<R>(fn: (tx: Store) => Promise<R>): Promise<R> {
    if (this.db.isTransaction) return fn(this)
    return this.db.transaction().execute((trx) => fn(new KyselyStore(trx, this.dialect)))
  }

  async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: { getMigrations: async () => migrations } })
    const { error, results } = await migrator.migrateToLatest()
    if (error !== undefined) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown'
      throw new Error(`database migration ${failed} failed`, { cause: error })
    }
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db)
  }

  async close(): Promise<void> {
    await this.db.destroy()
    await this.onClose()
  }
}
