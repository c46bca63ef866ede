import type { Kysely } from 'kysely'

// Publishing: deployments (the stable product object), the route of each environment to
// its active version, versions (one per publish, numbered per deployment), releases
// (immutable build outputs by sha256, shared by versions) and every change of a route.

const ATTRIBUTION_COLUMNS = ['external_user_id', 'external_project_id', 'external_workspace_id'] as const

export async function up(db: Kysely<unknown>): Promise<void> {
  let deployments = db.schema
    .createTable('deployments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
    .addColumn('project_id', 'text', (c) => c.references('projects.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('slug', 'text', (c) => c.notNull())
    .addColumn('spa_fallback', 'integer', (c) => c.notNull().defaultTo(0))
    // The last version number handed out: incremented in the transaction that inserts a version.
    .addColumn('next_version', 'integer', (c) => c.notNull().defaultTo(0))
  for (const column of ATTRIBUTION_COLUMNS) deployments = deployments.addColumn(column, 'text')
  await deployments
    .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    // Managed hostnames are `<deployment-slug>.<workspace-slug>.<base-domain>`: unique per workspace.
    .addUniqueConstraint('deployments_slug_unique', ['workspace_id', 'slug'])
    .execute()
  await db.schema.createIndex('deployments_org_created_idx').on('deployments').columns(['organization_id', 'created_at', 'id']).execute()

  await db.schema
    .createTable('deployment_routes')
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('active_version_id', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('deployment_routes_pkey', ['deployment_id', 'environment'])
    .execute()

  let versions = db.schema
    .createTable('versions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('version_number', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('plan', 'text')
    .addColumn('source_sha256', 'text')
    .addColumn('release_sha256', 'text')
    .addColumn('release_kind', 'text')
    // Not a foreign key: a version outlives the sandbox it was published from.
    .addColumn('sandbox_id', 'text')
    .addColumn('logs', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_by', 'text', (c) => c.notNull())
  for (const column of ATTRIBUTION_COLUMNS) versions = versions.addColumn(column, 'text')
  await versions
    .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addUniqueConstraint('versions_version_number_unique', ['deployment_id', 'version_number'])
    .execute()
  await db.schema.createIndex('versions_org_created_idx').on('versions').columns(['organization_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('versions_status_idx').on('versions').column('status').execute()

  await db.schema
    .createTable('releases')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('route_changes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('from_version_id', 'text')
    .addColumn('to_version_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('route_changes_org_created_idx').on('route_changes').columns(['organization_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('route_changes_deployment_idx').on('route_changes').column('deployment_id').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('route_changes').execute()
  await db.schema.dropTable('releases').execute()
  await db.schema.dropTable('versions').execute()
  await db.schema.dropTable('deployment_routes').execute()
  await db.schema.dropTable('deployments').execute()
}
