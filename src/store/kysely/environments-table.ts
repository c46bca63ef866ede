import type { Kysely } from 'kysely'
import type { EnvironmentRecord, OrgScope, Store } from '../store.js'
import { KyselyTable } from './table.js'
import type { AnyDatabase, Dialect, TableSpec } from './table.js'

// Deployment environments: an ordinary table, plus the edge's lookup by slug and the
// removal of a project's environments with the project.

export const environmentsSpec: TableSpec<EnvironmentRecord> = {
  name: 'environments',
  kind: 'environment',
  columns: ['id', 'organization_id', 'project_id', 'name', 'slug', 'created_at'],
}

export function environmentsTable(db: Kysely<AnyDatabase>, dialect: Dialect): Store['environments'] {
  const table = new KyselyTable<EnvironmentRecord, OrgScope>(db, dialect, environmentsSpec)
  return Object.assign(table, {
    findBySlugUnscoped: async (projectId: string, slug: string) => (await table.findWhereUnscoped({ project_id: projectId, slug }, 1))[0],
    deleteByProject: async (scope: OrgScope, projectId: string) => {
      const result = await db
        .deleteFrom('environments')
        .where('organization_id', '=', scope.organization_id)
        .where('project_id', '=', projectId)
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  })
}
