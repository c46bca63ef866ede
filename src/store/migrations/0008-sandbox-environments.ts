import type { Kysely } from 'kysely'

// A sandbox can develop against a deployment environment: its env vars are injected into
// the sandbox when it is created or resumed. The values are never stored with the sandbox,
// only which deployment environment it draws them from.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sandboxes').addColumn('deployment_id', 'text').execute()
  await db.schema.alterTable('sandboxes').addColumn('environment', 'text').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sandboxes').dropColumn('environment').execute()
  await db.schema.alterTable('sandboxes').dropColumn('deployment_id').execute()
}
