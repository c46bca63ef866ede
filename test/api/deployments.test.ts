import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import { INTERRUPTED_BUILD_ERROR } from '../../src/core/publish.js'
import type { DeploymentRecord, VersionRecord } from '../../src/store/store.js'
import { startTestPlatform } from '../helpers/platform.js'
import { insertVersionRecord } from '../helpers/version-records.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// Deployments, versions and routes through the API. Versions are written straight into the
// store where a build is not the point (rollback, promote, archive, recovery); builds
// themselves run against a fake builder in test/core/publish.test.ts.

let t: TestPlatform
let org: { id: string; key: string }
let workspace: { id: string; slug: string }

beforeAll(async () => {
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  org = await t.newOrganization('Deploy Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Dr Smith', slug: `dr-smith-${Date.now().toString(36)}` } })
  expect(ws.status).toBe(201)
  workspace = { id: ws.json.id, slug: ws.json.slug }
})

afterAll(async () => {
  await t?.close()
})

async function createDeployment(body: Record<string, unknown> = {}): Promise<{ id: string; slug: string; url: string } & Record<string, any>> {
  const res = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'Smile Dental', workspace_id: workspace.id, ...body } })
  expect(res.status, res.text).toBe(201)
  return res.json
}

/** A version written into the store, numbered by the store like a publish's. */
function insertVersion(dep: { id: string } & Record<string, any>, overrides: Partial<VersionRecord> = {}): Promise<VersionRecord> {
  return insertVersionRecord(t.platform.store, dep as DeploymentRecord, { logs: 'line one\nline two\n', ...overrides })
}

/** Points production at the version, as a publish that went live does. */
async function goLive(dep: { id: string }, version: VersionRecord): Promise<void> {
  await t.platform.store.deploymentRoutes.repoint({ organization_id: org.id }, {
    id: newId('routeChange'),
    organization_id: org.id,
    deployment_id: dep.id,
    environment: 'production',
    to_version_id: version.id,
    reason: 'publish',
    actor: 'key_test',
    created_at: new Date().toISOString(),
  })
}

describe('deployments', () => {
  it('are created with a managed URL under the workspace, got, and listed with filters', async () => {
    const dep = await createDeployment({ name: 'Smile Dental', external_user_id: 'user-smile', metadata: { plan: 'pro' } })
    expect(dep.id).toMatch(/^dep_/)
    expect(dep.slug).toBe('smile-dental')
    expect(dep.url).toMatch(new RegExp(`^http://smile-dental\\.${workspace.slug}\\.localhost:\\d+$`))
    expect(dep.active_version_id).toBeNull()
    expect(dep.routes).toEqual([
      { environment: 'production', url: dep.url, active_version_id: null, updated_at: null },
      { environment: 'staging', url: dep.url.replace('smile-dental.', 'smile-dental--staging.'), active_version_id: null, updated_at: null },
    ])

    const got = await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })
    expect(got.json).toEqual(dep)

    const other = await createDeployment({ name: 'Other App' })
    const bySlug = await t.call('GET', '/api/v1/deployments?slug=smile-dental', { key: org.key })
    expect(bySlug.json.data.map((d: { id: string }) => d.id)).toEqual([dep.id])
    const byUser = await t.call('GET', '/api/v1/deployments?external_user_id=user-smile', { key: org.key })
    expect(byUser.json.data.map((d: { id: string }) => d.id)).toEqual([dep.id])
    const byMeta = await t.call('GET', '/api/v1/deployments?metadata[plan]=pro', { key: org.key })
    expect(byMeta.json.data.map((d: { id: string }) => d.id)).toEqual([dep.id])
    const byWorkspace = await t.call('GET', `/api/v1/deployments?workspace_id=${workspace.id}`, { key: org.key })
    expect(byWorkspace.json.data.map((d: { id: string }) => d.id)).toEqual(expect.arrayContaining([dep.id, other.id]))
  })

  it('a taken slug is a 409 naming it; a name whose slug is taken gets another', async () => {
    await createDeployment({ name: 'Taken', slug: 'taken-app' })
    const clash = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'Again', slug: 'taken-app', workspace_id: workspace.id } })
    expect(clash.status).toBe(409)
    expect(clash.json.error.details).toEqual({ field: 'slug' })
    const derived = await createDeployment({ name: 'taken app' })
    expect(derived.slug).toMatch(/^taken-app-[a-z2-7]{4}$/)
  })

  it('bad input gets a 400 naming the field', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/v1/deployments', {}, 'name'],
      ['POST', '/api/v1/deployments', { name: 'x', slug: 'Not A Slug' }, 'slug'],
      ['POST', '/api/v1/deployments', { name: 'x', spa_fallback: 'yes' }, 'spa_fallback'],
      ['POST', '/api/v1/publish', { name: 'x' }, 'sandbox_id'],
      ['POST', '/api/v1/publish', { name: 'x', sandbox_id: 'sbx_x', kind: 'serverless' }, 'kind'],
      ['POST', '/api/v1/publish', { name: 'x', sandbox_id: 'sbx_x', environment: 'Prod Env' }, 'environment'],
      ['POST', '/api/v1/publish', { name: 'x', sandbox_id: 'sbx_x', settings: { output_dir: '../etc' } }, 'settings.output_dir'],
      ['POST', '/api/v1/publish', { name: 'x', sandbox_id: 'sbx_x', settings: { build: 'npm run build' } }, 'settings'],
      ['POST', '/api/v1/deployments/dep_x/rollback', {}, 'version_id'],
      ['POST', '/api/v1/deployments/dep_x/rollback', { version_id: 'ver_x', version_number: 2 }, 'version_id'],
      ['POST', '/api/v1/deployments/dep_x/promote', { version_number: 0 }, 'version_number'],
    ]
    for (const [method, path, body, field] of cases) {
      const res = await t.call(method, path, { key: org.key, body })
      expect(res.status, `${path} ${JSON.stringify(body)} → ${res.text}`).toBe(400)
      expect(res.json.error.code).toBe('invalid')
      expect(res.text, `${path} ${JSON.stringify(body)} names ${field}`).toContain(field)
    }
    const query = await t.call('GET', '/api/v1/deployments/dep_x/versions?status=gone', { key: org.key })
    expect(query.status).toBe(400)
    expect(query.text).toContain('status')
  })
})

describe('publishing', () => {
  it('an unknown sandbox is a 404, and a sandbox whose workspace cannot be captured creates nothing', async () => {
    const unknown = await t.call('POST', '/api/v1/publish', { key: org.key, body: { name: 'Nowhere', sandbox_id: 'sbx_doesnotexist' } })
    expect(unknown.status).toBe(404)
    // A record without a container: the capture fails before any deployment or version is written.
    const box = await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: workspace.id })
    const res = await t.call('POST', '/api/v1/publish', { key: org.key, body: { name: 'No Container App', sandbox_id: box.id } })
    expect(res.status).toBeGreaterThanOrEqual(400)
    const listed = await t.call('GET', '/api/v1/deployments?name=No Container App', { key: org.key })
    expect(listed.json.data).toEqual([])
    const dep = await createDeployment({ name: 'Has No Source' })
    const direct = await t.call('POST', `/api/v1/deployments/${dep.id}/publish`, { key: org.key, body: { sandbox_id: box.id } })
    expect(direct.status).toBeGreaterThanOrEqual(400)
    const versions = await t.call('GET', `/api/v1/deployments/${dep.id}/versions`, { key: org.key })
    expect(versions.json.data).toEqual([])
  })
})

describe('rollback and promote', () => {
  it('re-point the route to ready versions, answer fast, and record who, when, from and to', async () => {
    const dep = await createDeployment({ name: 'Rollback App' })
    const v1 = await insertVersion(dep)
    const v2 = await insertVersion(dep)
    const failed = await insertVersion(dep, { status: 'failed', error: 'npm run build exited with 1' })
    const building = await insertVersion(dep, { status: 'building' })
    expect([v1, v2, failed, building].map((v) => v.version_number)).toEqual([1, 2, 3, 4])
    await goLive(dep, v2)
    expect((await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json.active_version_id).toBe(v2.id)

    const started = performance.now()
    const back = await t.call('POST', `/api/v1/deployments/${dep.id}/rollback`, { key: org.key, body: { version_number: 1 } })
    const elapsed = performance.now() - started
    expect(back.status, back.text).toBe(200)
    expect(elapsed).toBeLessThan(500)
    expect(back.json.deployment.active_version_id).toBe(v1.id)
    expect(back.json.version).toMatchObject({ id: v1.id, version_number: 1, status: 'ready' })
    expect(back.json.change).toMatchObject({ from_version_id: v2.id, to_version_id: v1.id, reason: 'rollback', environment: 'production' })
    expect(back.json.change.actor).toMatch(/^key_/)

    // The edge resolves the managed hostname to the version now active.
    const site = await t.platform.services.deployments.resolveApp({ deploymentSlug: dep.slug as string, workspaceSlug: workspace.slug })
    expect(site).toMatchObject({ deploymentId: dep.id, versionId: v1.id, release: { sha256: v1.release_sha256, kind: 'static' }, spaFallback: false })
    expect(await t.platform.services.deployments.resolveApp({ deploymentSlug: 'no-such-app', workspaceSlug: workspace.slug })).toBeUndefined()

    const promoted = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v2.id, environment: 'production' } })
    expect(promoted.status, promoted.text).toBe(200)
    expect(promoted.json.change).toMatchObject({ from_version_id: v1.id, to_version_id: v2.id, reason: 'promote' })
    const staging = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_number: 1, environment: 'staging' } })
    expect(staging.status).toBe(200)
    expect(staging.json.deployment.active_version_id).toBe(v2.id)
    expect(staging.json.deployment.routes).toEqual([
      { environment: 'production', url: dep.url, active_version_id: v2.id, updated_at: expect.any(String) },
      { environment: 'staging', url: expect.stringContaining('--staging.'), active_version_id: v1.id, updated_at: expect.any(String) },
    ])

    // Not ready: 409, and the route is untouched.
    for (const body of [{ version_number: failed.version_number }, { version_id: building.id }]) {
      const refused = await t.call('POST', `/api/v1/deployments/${dep.id}/rollback`, { key: org.key, body })
      expect(refused.status, refused.text).toBe(409)
      expect(refused.json.error.code).toBe('conflict')
    }
    const missing = await t.call('POST', `/api/v1/deployments/${dep.id}/rollback`, { key: org.key, body: { version_number: 99 } })
    expect(missing.status).toBe(404)
    // A version of another deployment is not this deployment's.
    const otherDep = await createDeployment({ name: 'Other Rollback App' })
    const foreign = await t.call('POST', `/api/v1/deployments/${otherDep.id}/rollback`, { key: org.key, body: { version_id: v1.id } })
    expect(foreign.status).toBe(404)
    expect((await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json.active_version_id).toBe(v2.id)

    const history = await t.call('GET', `/api/v1/deployments/${dep.id}/route-history`, { key: org.key })
    expect(history.status).toBe(200)
    expect(history.json.data.map((c: { reason: string; to_version_id: string }) => [c.reason, c.to_version_id])).toEqual([
      ['promote', v1.id],
      ['promote', v2.id],
      ['rollback', v1.id],
      ['publish', v2.id],
    ])
    const production = await t.call('GET', `/api/v1/deployments/${dep.id}/route-history?environment=production`, { key: org.key })
    expect(production.json.data).toHaveLength(3)
  })
})

describe('versions', () => {
  it('are listed newest first; archived ones only when asked for; the active one cannot be archived', async () => {
    const dep = await createDeployment({ name: 'Archive App' })
    const v1 = await insertVersion(dep)
    const v2 = await insertVersion(dep)
    const v3 = await insertVersion(dep, { status: 'building' })
    await goLive(dep, v2)

    const archived = await t.call('POST', `/api/v1/versions/${v1.id}/archive`, { key: org.key })
    expect(archived.status, archived.text).toBe(200)
    expect(archived.json.status).toBe('archived')
    expect(archived.json).not.toHaveProperty('logs')
    const again = await t.call('POST', `/api/v1/versions/${v1.id}/archive`, { key: org.key })
    expect(again.status).toBe(200)
    const active = await t.call('POST', `/api/v1/versions/${v2.id}/archive`, { key: org.key })
    expect(active.status).toBe(409)
    const stillBuilding = await t.call('POST', `/api/v1/versions/${v3.id}/archive`, { key: org.key })
    expect(stillBuilding.status).toBe(409)

    const list = await t.call('GET', `/api/v1/deployments/${dep.id}/versions`, { key: org.key })
    expect(list.json.data.map((v: { version_number: number }) => v.version_number)).toEqual([3, 2])
    expect(list.json.data[0].url).toBe(dep.url)
    const all = await t.call('GET', `/api/v1/deployments/${dep.id}/versions?include_archived=true`, { key: org.key })
    expect(all.json.data.map((v: { version_number: number }) => v.version_number)).toEqual([3, 2, 1])
    const onlyArchived = await t.call('GET', `/api/v1/deployments/${dep.id}/versions?status=archived`, { key: org.key })
    expect(onlyArchived.json.data.map((v: { id: string }) => v.id)).toEqual([v1.id])
    const byNumber = await t.call('GET', `/api/v1/deployments/${dep.id}/versions?version_number=2`, { key: org.key })
    expect(byNumber.json.data.map((v: { id: string }) => v.id)).toEqual([v2.id])

    // An archived version is still there (its release is kept) and can be got.
    const got = await t.call('GET', `/api/v1/versions/${v1.id}`, { key: org.key })
    expect(got.json).toMatchObject({ id: v1.id, status: 'archived', release_sha256: v1.release_sha256 })
  })

  it('logs: as text, or as server-sent events that end with the status', async () => {
    const dep = await createDeployment({ name: 'Logs App' })
    const failed = await insertVersion(dep, { status: 'failed', error: 'npm ERR! missing script: build', logs: 'npm install\nnpm ERR! missing script: build\n' })
    const text = await t.call('GET', `/api/v1/versions/${failed.id}/logs`, { key: org.key })
    expect(text.status).toBe(200)
    expect(text.text).toBe('npm install\nnpm ERR! missing script: build\n')
    const events = await t.call('GET', `/api/v1/versions/${failed.id}/logs?follow=true`, { key: org.key })
    expect(events.status).toBe(200)
    expect(events.text).toContain('event: line\ndata: {"line":"npm install"}')
    expect(events.text).toContain('event: line\ndata: {"line":"npm ERR! missing script: build"}')
    expect(events.text).toContain('event: end\ndata: {"status":"failed","error":"npm ERR! missing script: build"}')
  })
})

describe('restart', () => {
  it('recoverInterruptedBuilds marks building versions failed and leaves the active version serving', async () => {
    const dep = await createDeployment({ name: 'Crash App' })
    const v1 = await insertVersion(dep)
    await goLive(dep, v1)
    const stuck = await insertVersion(dep, { status: 'building', logs: 'npm install\n' })
    const marked = await t.platform.services.publish.recoverInterruptedBuilds()
    expect(marked).toBeGreaterThanOrEqual(1)
    const got = await t.call('GET', `/api/v1/versions/${stuck.id}`, { key: org.key })
    expect(got.json).toMatchObject({ status: 'failed', error: INTERRUPTED_BUILD_ERROR })
    expect(got.json.finished_at).not.toBeNull()
    const logs = await t.call('GET', `/api/v1/versions/${stuck.id}/logs`, { key: org.key })
    expect(logs.text).toBe(`npm install\nmiosa: build failed: ${INTERRUPTED_BUILD_ERROR}\n`)
    expect((await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json.active_version_id).toBe(v1.id)
    expect(await t.platform.services.publish.recoverInterruptedBuilds()).toBe(0)
  })
})

describe('the SDK', () => {
  it('client.deployments and client.versions: list, get, versions, rollback, promote, route history, logs', async () => {
    const { MiosaClient } = await import('../../src/sdk/index.js')
    const client = new MiosaClient({ apiUrl: t.apiUrl, apiKey: org.key })
    const dep = await client.deployments.create({ name: 'SDK App', workspace_id: workspace.id })
    const v1 = await insertVersion(dep, { logs: 'one\ntwo\n' })
    const v2 = await insertVersion(dep)
    await goLive(dep, v2)
    expect((await client.deployments.list({ slug: dep.slug })).data.map((d) => d.id)).toEqual([dep.id])
    expect((await client.versions.list(dep.id)).data.map((v) => v.version_number)).toEqual([2, 1])
    const back = await client.deployments.rollback(dep.id, { version_number: 1 })
    expect(back.deployment.active_version_id).toBe(v1.id)
    const forward = await client.deployments.promote(dep.id, { version_id: v2.id })
    expect(forward.change.from_version_id).toBe(v1.id)
    expect((await client.deployments.routeHistory(dep.id)).data.map((c) => c.reason)).toEqual(['promote', 'rollback', 'publish'])
    expect(await client.versions.logs(v1.id)).toBe('one\ntwo\n')
    const lines: string[] = []
    expect(await client.versions.followLogs(v1.id, (line) => lines.push(line))).toEqual({ status: 'ready', error: null })
    expect(lines).toEqual(['one', 'two'])
    expect((await client.versions.archive(v1.id)).status).toBe('archived')
    const refused = await client.deployments.publishByName({ name: 'SDK App', sandbox_id: 'sbx_nope' }).catch((e: unknown) => e)
    expect(refused).toMatchObject({ code: 'not_found' })
  })
})
