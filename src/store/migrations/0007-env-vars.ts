import type { Kysely } from 'kysely'

// Env vars and secrets of deployment environments, one row per (deployment, environment,
// key). Values are never stored in the clear: `ciphertext` (with its tag) and `nonce` are
// base64 of a ChaCha20-Poly1305 seal under the master key named by `key_id`.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('env_vars')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('deployment_id', 'text', (c) => c.notNull().references('deployments.id'))
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('ciphertext', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('phase', 'text', (c) => c.notNull())
    .addColumn('is_secret', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('env_vars_key_unique', ['deployment_id', 'environment', 'key'])
    .execute()
  await db.schema.createIndex('env_vars_key_id_idx').on('env_vars').columns(['key_id', 'id']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('env_vars').execute()
}
