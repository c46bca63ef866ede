import type { Kysely } from 'kysely'
import { sql } from 'kysely'

// Dynamic deployments: each deployment's runtime settings (desired instance count, health
// check, deploy and drain timeouts), the OCI archive behind a dynamic release, the runtime
// instances serving an environment's active version, and what happened to them.

export const DEFAULT_HEALTH_CHECK = { path: null, interval_seconds: 2, timeout_seconds: 2, grace_seconds: 30 }

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('deployments').addColumn('instances', 'integer', (c) => c.notNull().defaultTo(1)).execute()
  await db.schema
    .alterTable('deployments')
    .addColumn('health_check', 'text', (c) => c.notNull().defaultTo(sql.lit(JSON.stringify(DEFAULT_HEALTH_CHECK))))
    .execute()
  await db.schema.alterTable('deployments').addColumn('deploy_timeout_seconds', 'integer', (c) => c.notNull().defaultTo(120)).execute()
  await db.schema.alterTable('deployments').addColumn('drain_timeout_seconds', 'integer', (c) => c.notNull().defaultTo(30)).execute()
  await db.schema.alterTable('releases').addColumn('archive_sha256', 'text').execute()

  await db.schema
    .createTable('instances')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('version_id', 'text', (c) => c.notNull())
    .addColumn('version_number', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('runtime_ref', 'text')
    .addColumn('address', 'text')
    .addColumn('exit_code', 'integer')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('healthy_at', 'text')
    .execute()
  await db.schema.createIndex('instances_deployment_idx').on('instances').columns(['deployment_id', 'environment']).execute()
  await db.schema.createIndex('instances_org_created_idx').on('instances').columns(['organization_id', 'created_at', 'id']).execute()

  await db.schema
    .createTable('instance_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('instance_id', 'text')
    .addColumn('version_id', 'text')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('instance_events_deployment_idx').on('instance_events').columns(['deployment_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('instance_events_org_created_idx').on('instance_events').columns(['organization_id', 'created_at', 'id']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('instance_events').execute()
  await db.schema.dropTable('instances').execute()
}
