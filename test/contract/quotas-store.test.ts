import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import { STORE_DIALECTS } from '../helpers/store-dialects.js'
import type { OpenedStore } from '../helpers/store-dialects.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'
import { insertVersionRecord } from '../helpers/version-records.js'

// The quota store on both dialects: limits per organization and workspace (scoped to their
// organization), and use counted per organization or workspace from the tables that hold it.

for (const [name, open] of STORE_DIALECTS) {
  describe(`quota store: ${name}`, () => {
    let o: OpenedStore
    const now = new Date().toISOString()
    const org = newId('organization')
    const otherOrg = newId('organization')
    const [ws1, ws2, otherWs] = [newId('workspace'), newId('workspace'), newId('workspace')]
    const scope = { organization_id: org }
    const attribution = { external_user_id: null, external_project_id: null, external_workspace_id: null, metadata: {} }

    beforeAll(async () => {
      o = await open()
      await o.store.migrate()
      for (const id of [org, otherOrg]) await o.store.organizations.insert({ id, name: id, slug: id.replace('_', '-'), ...attribution, created_at: now, updated_at: now })
      for (const [id, owner] of [[ws1, org], [ws2, org], [otherWs, otherOrg]] as const) {
        await o.store.workspaces.insert({ id, organization_id: owner, name: id, slug: id.replace('_', '-'), ...attribution, created_at: now, updated_at: now })
      }
    }, 60_000)

    afterAll(async () => {
      await o?.close()
    })

    it('keeps limits per organization and per workspace, never touching another organization', async () => {
      expect(await o.store.quotas.getLimits(scope, null)).toEqual({})
      await o.store.quotas.setLimits(scope, null, { running_sandboxes: 2, storage_gb: 1.5 }, now)
      await o.store.quotas.setLimits(scope, ws1, { running_sandboxes: 1 }, now)
      expect(await o.store.quotas.getLimits(scope, null)).toEqual({ running_sandboxes: 2, storage_gb: 1.5 })
      expect(await o.store.quotas.getLimits(scope, ws1)).toEqual({ running_sandboxes: 1 })
      expect(await o.store.quotas.getLimits(scope, ws2)).toEqual({})
      expect(await o.store.quotas.getLimitsOf(scope, ws1)).toEqual({ organization: { running_sandboxes: 2, storage_gb: 1.5 }, workspace: { running_sandboxes: 1 } })
      // Another organization naming these rows neither reads nor changes them.
      expect(await o.store.quotas.getLimits({ organization_id: otherOrg }, ws1)).toEqual({})
      await o.store.quotas.setLimits({ organization_id: otherOrg }, ws1, { running_sandboxes: 99 }, now)
      expect(await o.store.quotas.getLimits(scope, ws1)).toEqual({ running_sandboxes: 1 })
      await o.store.quotas.deleteWorkspaceLimits({ organization_id: otherOrg }, ws1)
      expect(await o.store.quotas.getLimits(scope, ws1)).toEqual({ running_sandboxes: 1 })
      await o.store.quotas.deleteWorkspaceLimits(scope, ws1)
      expect(await o.store.quotas.getLimits(scope, ws1)).toEqual({})
    })

    it('counts use per organization and per workspace', async () => {
      const empty = await o.store.quotas.usage(scope)
      expect(empty).toEqual({ running_sandboxes: 0, sandboxes: 0, sandbox_vcpus: 0, sandbox_memory_mb: 0, instances: 0, desired_instances: 0, builds: 0, deployments: 0, snapshot_bytes: 0, release_bytes: 0 })

      const box = (workspace: string, state: 'running' | 'paused' | 'creating' | 'destroyed' | 'error', cpu = 1, memory_mb = 512) =>
        insertSandboxRecord(o.store, { organization_id: org, workspace_id: workspace }, { state, cpu, memory_mb })
      const running = await box(ws1, 'running', 2, 1024)
      await box(ws1, 'creating', 0.5, 256)
      await box(ws2, 'paused')
      await box(ws2, 'destroyed')
      await box(ws2, 'error')
      await insertSandboxRecord(o.store, { organization_id: otherOrg, workspace_id: otherWs }, { state: 'running' })

      await o.store.snapshots.insert({
        id: newId('snapshot'), organization_id: org, workspace_id: ws1, sandbox_id: running.id, name: 's', state: 'ready', error: null,
        size_bytes: 3 * 1024 ** 3, template: 'static', runtime_ref: null, ...attribution, created_at: now, updated_at: now,
      })
      const deployment = (workspace: string) => ({
        id: newId('deployment'), organization_id: org, workspace_id: workspace, project_id: null, name: 'd', slug: newId('deployment').slice(4, 14),
        spa_fallback: false, instances: 1, health_check: { path: null, interval_seconds: 2, timeout_seconds: 2, grace_seconds: 30 },
        deploy_timeout_seconds: 120, drain_timeout_seconds: 30, ...attribution, created_at: now, updated_at: now,
      })
      const d1 = await o.store.deployments.insert(deployment(ws1))
      const d2 = await o.store.deployments.insert(deployment(ws2))
      // One release referenced by two versions (of two workspaces) counts once for the organization.
      const sha = 'f'.repeat(64)
      await o.store.releases.put({ sha256: sha, kind: 'static', size_bytes: 1000, created_at: now })
      await insertVersionRecord(o.store, d1, { release_sha256: sha })
      await insertVersionRecord(o.store, d2, { release_sha256: sha })
      await insertVersionRecord(o.store, d2, { status: 'building' })

      expect(await o.store.quotas.usage(scope)).toEqual({
        running_sandboxes: 2, sandboxes: 3, sandbox_vcpus: 2.5, sandbox_memory_mb: 1280, instances: 0, desired_instances: 0, builds: 1, deployments: 2,
        snapshot_bytes: 3 * 1024 ** 3, release_bytes: 1000,
      })
      expect(await o.store.quotas.usage(scope, ws2)).toEqual({
        running_sandboxes: 0, sandboxes: 1, sandbox_vcpus: 0, sandbox_memory_mb: 0, instances: 0, desired_instances: 0, builds: 1, deployments: 1, snapshot_bytes: 0, release_bytes: 1000,
      })
      expect((await o.store.quotas.usage({ organization_id: otherOrg })).running_sandboxes).toBe(1)
      // Instances asked for: a deployment's count in each environment serving a dynamic version.
      const app = await o.store.deployments.insert({ ...deployment(ws1), instances: 3 })
      const dynamic = await insertVersionRecord(o.store, app, { release_sha256: 'd'.repeat(64), release_kind: 'dynamic' })
      await o.store.deploymentRoutes.repoint(scope, {
        id: newId('routeChange'), organization_id: org, deployment_id: app.id, environment: 'production', to_version_id: dynamic.id, reason: 'publish', actor: 'key_test', created_at: now,
      })
      expect(await o.store.quotas.usage(scope, ws1, new Set(['instances']))).toMatchObject({ instances: 0, desired_instances: 3 })
      expect(await o.store.quotas.usage(scope, ws2, new Set(['instances']))).toMatchObject({ instances: 0, desired_instances: 0 })
      // Only the parts asked for are counted.
      expect(await o.store.quotas.usage(scope, undefined, new Set(['deployments', 'storage']))).toEqual({
        running_sandboxes: 0, sandboxes: 0, sandbox_vcpus: 0, sandbox_memory_mb: 0, instances: 0, desired_instances: 0, builds: 0, deployments: 3,
        snapshot_bytes: 3 * 1024 ** 3, release_bytes: 1000,
      })
    })
  })
}
