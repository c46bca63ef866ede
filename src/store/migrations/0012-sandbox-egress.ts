import type { Kysely } from 'kysely'

// A sandbox's egress policy, as JSON: null (open, as every sandbox before this), or
// {"allow": [...]} (no connections beyond its workspace network but to these). Kept
// across stop and resume and copied to forks; the host's rules are made from it.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sandboxes').addColumn('egress', 'text').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sandboxes').dropColumn('egress').execute()
}
