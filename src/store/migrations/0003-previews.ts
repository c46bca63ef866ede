import type { Kysely } from 'kysely'

// Access to sandbox previews: signed preview tokens (kept for listing and revocation),
// share tokens (kept as a hash, with an optional scrypt password hash), each workspace's
// tenant settings (branding, preview domain), and whether a sandbox's previews are public.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('sandboxes')
    .addColumn('preview_public', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()

  await db.schema
    .createTable('preview_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
    .addColumn('sandbox_id', 'text', (c) => c.notNull().references('sandboxes.id'))
    .addColumn('port', 'integer')
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'text')
    .addColumn('external_user_id', 'text')
    .addColumn('external_project_id', 'text')
    .addColumn('external_workspace_id', 'text')
    .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('preview_tokens_org_created_idx').on('preview_tokens').columns(['organization_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('preview_tokens_sandbox_idx').on('preview_tokens').column('sandbox_id').execute()

  await db.schema
    .createTable('share_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
    .addColumn('sandbox_id', 'text', (c) => c.notNull().references('sandboxes.id'))
    .addColumn('port', 'integer')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('token_prefix', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text')
    .addColumn('expires_at', 'text')
    .addColumn('revoked_at', 'text')
    .addColumn('external_user_id', 'text')
    .addColumn('external_project_id', 'text')
    .addColumn('external_workspace_id', 'text')
    .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('share_tokens_token_hash_unique', ['token_hash'])
    .execute()
  await db.schema.createIndex('share_tokens_org_created_idx').on('share_tokens').columns(['organization_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('share_tokens_sandbox_idx').on('share_tokens').column('sandbox_id').execute()

  await db.schema
    .createTable('tenant_settings')
    .addColumn('workspace_id', 'text', (c) => c.primaryKey().references('workspaces.id'))
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('branding', 'text')
    .addColumn('preview_domain', 'text')
    .addColumn('preview_domain_verified_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    // One workspace per preview domain, across the platform: the edge routes by it.
    .addUniqueConstraint('tenant_settings_preview_domain_unique', ['preview_domain'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('tenant_settings').execute()
  await db.schema.dropTable('share_tokens').execute()
  await db.schema.dropTable('preview_tokens').execute()
  await db.schema.alterTable('sandboxes').dropColumn('preview_public').execute()
}
