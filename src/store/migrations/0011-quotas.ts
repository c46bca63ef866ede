import type { Kysely } from 'kysely'

// Quotas: the limits an organization, or one of its workspaces, overrides (as JSON: only
// the resources it sets). One row per subject: the organization (workspace_id null) or a
// workspace. Use is not stored: it is counted from the tables that hold it.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('quota_limits')
    // The organization's id or the workspace's.
    .addColumn('subject_id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.references('workspaces.id'))
    .addColumn('limits', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('quota_limits_org_idx').on('quota_limits').column('organization_id').execute()
  // Counting use per organization and workspace: builds in progress, sandboxes by state.
  await db.schema.createIndex('versions_org_status_idx').on('versions').columns(['organization_id', 'status']).execute()
  await db.schema.createIndex('sandboxes_org_state_idx').on('sandboxes').columns(['organization_id', 'state']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('sandboxes_org_state_idx').execute()
  await db.schema.dropIndex('versions_org_status_idx').execute()
  await db.schema.dropTable('quota_limits').execute()
}
