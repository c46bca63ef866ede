import type { CreateTableBuilder, Kysely } from 'kysely'

// One schema for both dialects: text ids and ISO-8601 text timestamps (they sort
// correctly as text in SQLite and PostgreSQL alike), JSON kept as text.

type AttributionColumn = 'external_user_id' | 'external_project_id' | 'external_workspace_id' | 'metadata'

function withAttribution<T extends string, C extends string>(
  table: CreateTableBuilder<T, C>,
): CreateTableBuilder<T, C | AttributionColumn> {
  return table
    .addColumn('external_user_id', 'text')
    .addColumn('external_project_id', 'text')
    .addColumn('external_workspace_id', 'text')
    .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute()

  await withAttribution(
    db.schema
      .createTable('organizations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('slug', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull()),
  )
    .addUniqueConstraint('organizations_slug_unique', ['slug'])
    .execute()

  await withAttribution(
    db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .addColumn('revoked_at', 'text'),
  )
    .addUniqueConstraint('api_keys_hash_unique', ['hash'])
    .execute()

  await withAttribution(
    db.schema
      .createTable('workspaces')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('slug', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull()),
  )
    .addUniqueConstraint('workspaces_slug_unique', ['slug'])
    .execute()

  await withAttribution(
    db.schema
      .createTable('projects')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
      .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('slug', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull()),
  )
    .addUniqueConstraint('projects_slug_unique', ['workspace_id', 'slug'])
    .execute()

  // Every list is "this organization's rows, newest first".
  for (const table of ['api_keys', 'workspaces', 'projects']) {
    await db.schema
      .createIndex(`${table}_org_created_idx`)
      .on(table)
      .columns(['organization_id', 'created_at', 'id'])
      .execute()
  }
  await db.schema.createIndex('organizations_created_idx').on('organizations').columns(['created_at', 'id']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['projects', 'workspaces', 'api_keys', 'organizations', 'settings']) {
    await db.schema.dropTable(table).execute()
  }
}
