import type { Kysely } from 'kysely'

// A sandbox's background services (`exec --background`): what to start again when it resumes.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sandbox_services')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('sandbox_id', 'text', (c) => c.notNull().references('sandboxes.id'))
    .addColumn('cmd', 'text', (c) => c.notNull())
    .addColumn('cwd', 'text')
    .addColumn('env', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('log_path', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .execute()
  await db.schema.createIndex('sandbox_services_sandbox_idx').on('sandbox_services').columns(['sandbox_id', 'created_at']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sandbox_services').execute()
}
