import type { Kysely } from 'kysely'

// A failed version keeps the last lines of output that say why (the build's, or its app's
// when the instances never became healthy), as JSON: readable after the instances are gone.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('versions').addColumn('error_details', 'text').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('versions').dropColumn('error_details').execute()
}
