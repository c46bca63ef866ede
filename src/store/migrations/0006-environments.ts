import type { Kysely } from 'kysely'

// Deployment environments as objects: per project, each with a name (`production`,
// `preview/pr-42`) and its slug (the name with `/` → `-`, the part of the managed hostname
// after `<deployment-slug>--`), both unique in the project. Every project gets `production`
// and `staging` when it is created; this backfills them for the projects made before.

/** Frozen here (a migration never changes): the defaults as of this migration. */
const DEFAULTS = ['production', 'staging'] as const
const NAME = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\/[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)?$/
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

function environmentId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20))
  let out = 'env_'
  for (const byte of bytes) out += BASE32[byte & 31]
  return out
}

export async function up(schema: Kysely<unknown>): Promise<void> {
  const db = schema as unknown as Kysely<Record<string, Record<string, unknown>>>
  await db.schema
    .createTable('environments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('slug', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('environments_name_unique', ['project_id', 'name'])
    .addUniqueConstraint('environments_slug_unique', ['project_id', 'slug'])
    .execute()
  await db.schema.createIndex('environments_org_created_idx').on('environments').columns(['organization_id', 'created_at', 'id']).execute()

  const projects = await db.selectFrom('projects').select(['id', 'organization_id', 'created_at']).execute()
  for (const project of projects as { id: string; organization_id: string; created_at: string }[]) {
    for (const name of DEFAULTS) {
      await db
        .insertInto('environments')
        .values({ id: environmentId(), organization_id: project.organization_id, project_id: project.id, name, slug: name, created_at: project.created_at })
        .onConflict((oc) => oc.doNothing())
        .execute()
    }
  }
  // Routes published before environments were objects, to any valid name, keep being served:
  // their environments exist in the deployment's project (a name whose slug clashes is left out).
  const used = await db
    .selectFrom('deployment_routes')
    .innerJoin('deployments', 'deployments.id', 'deployment_routes.deployment_id')
    .innerJoin('projects', 'projects.id', 'deployments.project_id')
    .select(['deployments.project_id as project_id', 'projects.organization_id as organization_id', 'projects.created_at as created_at', 'deployment_routes.environment as environment'])
    .distinct()
    .execute()
  for (const row of used as { project_id: string; organization_id: string; created_at: string; environment: string }[]) {
    if (row.environment.length > 40 || !NAME.test(row.environment)) continue
    await db
      .insertInto('environments')
      .values({ id: environmentId(), organization_id: row.organization_id, project_id: row.project_id, name: row.environment, slug: row.environment.replace('/', '-'), created_at: row.created_at })
      .onConflict((oc) => oc.doNothing())
      .execute()
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('environments').execute()
}
