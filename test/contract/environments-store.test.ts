import { Migrator } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiosaError } from '../../src/core/errors.js'
import { newId } from '../../src/core/ids.js'
import { migrations } from '../../src/store/migrations/index.js'
import { STORE_DIALECTS } from '../helpers/store-dialects.js'
import type { OpenedStore } from '../helpers/store-dialects.js'

// The environments table on both dialects: migration 0006 backfills production and staging
// for projects made before it (and the environments their routes already used), names and
// slugs are unique per project, and an environment's routes go with it.

for (const [name, open] of STORE_DIALECTS) {
  describe(`environments store: ${name}`, () => {
    let o: OpenedStore
    const now = '2026-11-01T00:00:00.000Z'
    const org = newId('organization')
    const ws = newId('workspace')
    const oldProject = newId('project')
    const dep = newId('deployment')

    beforeAll(async () => {
      o = await open()
      const migrator = new Migrator({ db: o.db, provider: { getMigrations: async () => migrations } })
      const before = await migrator.migrateTo('0005-runtime-instances')
      expect(before.error).toBeUndefined()
      const attribution = { metadata: '{}' }
      await o.db.insertInto('organizations').values({ id: org, name: 'Org', slug: `org-${org.slice(-6)}`, created_at: now, updated_at: now, ...attribution }).execute()
      await o.db.insertInto('workspaces').values({ id: ws, organization_id: org, name: 'Ws', slug: `ws-${ws.slice(-6)}`, created_at: now, updated_at: now, ...attribution }).execute()
      await o.db.insertInto('projects').values({ id: oldProject, organization_id: org, workspace_id: ws, name: 'Old', slug: 'old', created_at: now, updated_at: now, ...attribution }).execute()
      await o.db
        .insertInto('deployments')
        .values({ id: dep, organization_id: org, workspace_id: ws, project_id: oldProject, name: 'App', slug: 'app', created_at: now, updated_at: now, ...attribution })
        .execute()
      for (const environment of ['production', 'qa', 'Not Valid']) {
        await o.db.insertInto('deployment_routes').values({ deployment_id: dep, environment, organization_id: org, active_version_id: null, updated_at: now }).execute()
      }
      await o.store.migrate()
    }, 60_000)

    afterAll(async () => {
      await o?.close()
    })

    const scope = { organization_id: org }

    it('migration 0006 backfills production and staging, and the valid environments routes already used', async () => {
      const rows = await o.store.environments.find(scope, { project_id: oldProject })
      expect(rows.map((e) => [e.name, e.slug]).toSorted()).toEqual([
        ['production', 'production'],
        ['qa', 'qa'],
        ['staging', 'staging'],
      ])
      for (const row of rows) expect(row).toMatchObject({ id: expect.stringMatching(/^env_[a-z2-7]{20}$/), organization_id: org, created_at: now })
    })

    it('names and slugs are unique per project', async () => {
      const make = (name: string, slug: string, project = oldProject) => ({ id: newId('environment'), organization_id: org, project_id: project, name, slug, created_at: now })
      await o.store.environments.insert(make('preview/pr-42', 'preview-pr-42'))
      const clashes = [make('qa', 'qa-2'), make('preview-pr-42', 'preview-pr-42')]
      for (const row of clashes) {
        const error = await o.store.environments.insert(row).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(MiosaError)
        expect((error as MiosaError).code).toBe('conflict')
      }
      expect(await o.store.environments.findBySlugUnscoped(oldProject, 'preview-pr-42')).toMatchObject({ name: 'preview/pr-42' })
      expect(await o.store.environments.findBySlugUnscoped(oldProject, 'preview/pr-42')).toBeUndefined()
    })

    it("an environment's routes are removed with it; a project's environments with the project", async () => {
      expect(await o.store.deploymentRoutes.deleteForEnvironment({ organization_id: newId('organization') }, oldProject, 'qa')).toBe(0)
      expect(await o.store.deploymentRoutes.deleteForEnvironment(scope, oldProject, 'qa')).toBe(1)
      expect((await o.store.deploymentRoutes.list(scope, dep)).map((r) => r.environment).toSorted()).toEqual(['Not Valid', 'production'])
      const other = newId('project')
      await o.store.projects.insert({
        id: other,
        organization_id: org,
        workspace_id: ws,
        name: 'Other',
        slug: 'other',
        external_user_id: null,
        external_project_id: null,
        external_workspace_id: null,
        metadata: {},
        created_at: now,
        updated_at: now,
      })
      await o.store.environments.insert({ id: newId('environment'), organization_id: org, project_id: other, name: 'production', slug: 'production', created_at: now })
      expect(await o.store.environments.deleteByProject(scope, other)).toBe(1)
      expect(await o.store.projects.delete(scope, other)).toBe(true)
      expect(await o.store.environments.find(scope, { project_id: oldProject })).toHaveLength(4)
    })
  })
}
