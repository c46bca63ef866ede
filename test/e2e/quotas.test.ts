import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { create as createTar } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertVersionRecord } from '../helpers/version-records.js'

// Quotas against real Docker: the root key sets an organization's limits, an organization
// key its workspaces' within them; a creation past a limit answers 429 quota_exceeded and
// leaves nothing behind, and concurrent creations are admitted exactly up to the limit.
// Sandboxes use the static template (its image is built before any test).

let t: TestPlatform

beforeAll(async () => {
  t = await startTestPlatform()
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

const setOrgLimits = (orgId: string, limits: Record<string, number | null>) => t.call('PATCH', `/api/v1/organizations/${orgId}`, { key: t.rootKey, body: { limits } })
const createSandbox = (key: string, body: Record<string, unknown> = {}, wait = true) =>
  t.call('POST', `/api/v1/sandboxes${wait ? '?wait=true' : ''}`, { key, body: { template: 'static', timeout: '1h', ...body } })
const liveSandboxes = async (key: string) => (await t.call('GET', '/api/v1/sandboxes?limit=200', { key })).json.data as { id: string; state: string }[]

describe.concurrent('quotas', () => {
  it('refuses the third running sandbox of an organization limited to 2, names the resource, and admits it once one stops', async () => {
    const org = await t.newOrganization('Two Running')
    const set = await setOrgLimits(org.id, { running_sandboxes: 2 })
    expect(set.status, set.text).toBe(200)
    expect(set.json.resources.running_sandboxes).toEqual({ limit: 2, used: 0, source: 'organization' })

    const [a, b] = await Promise.all([createSandbox(org.key, { name: 'a' }), createSandbox(org.key, { name: 'b' })])
    expect([a?.status, b?.status], `${a?.text} ${b?.text}`).toEqual([201, 201])
    const third = await createSandbox(org.key, { name: 'c' })
    expect(third.status, third.text).toBe(429)
    expect(third.json.error.code).toBe('quota_exceeded')
    expect(third.json.error.message).toContain('running_sandboxes')
    expect(third.json.error.details).toMatchObject({ resource: 'running_sandboxes', limit: 2, current: 2 })
    // Nothing half-written: no third record.
    expect((await liveSandboxes(org.key)).map((s) => s.id).sort()).toEqual([a.json.id, b.json.id].sort())

    const limits = await t.call('GET', `/api/v1/organizations/${org.id}/limits`, { key: org.key })
    expect(limits.status).toBe(200)
    expect(limits.json.resources.running_sandboxes).toEqual({ limit: 2, used: 2, source: 'organization' })
    expect(limits.json.resources.sandboxes.used).toBe(2)
    expect(limits.json.resources.vcpus.used).toBe(2)

    expect((await t.call('POST', `/api/v1/sandboxes/${a.json.id}/stop`, { key: org.key })).status).toBe(200)
    const again = await createSandbox(org.key, { name: 'c' })
    expect(again.status, again.text).toBe(201)
    expect(again.json.state).toBe('running')

    // Resuming the stopped one would make three running: refused the same way, and it stays paused.
    const resume = await t.call('POST', `/api/v1/sandboxes/${a.json.id}/resume`, { key: org.key })
    expect(resume.status, resume.text).toBe(429)
    expect(resume.json.error.details).toMatchObject({ resource: 'running_sandboxes', limit: 2, current: 2 })
    expect((await t.call('GET', `/api/v1/sandboxes/${a.json.id}`, { key: org.key })).json.state).toBe('paused')

    // null returns the limit to the platform's default: the resume goes through.
    expect((await setOrgLimits(org.id, { running_sandboxes: null })).json.resources.running_sandboxes.source).toBe('platform')
    expect((await t.call('POST', `/api/v1/sandboxes/${a.json.id}/resume`, { key: org.key })).status).toBe(200)
  }, 90_000)

  it('admits exactly the limit out of 10 concurrent creations', async () => {
    const org = await t.newOrganization('Burst')
    expect((await setOrgLimits(org.id, { sandboxes: 2 })).status).toBe(200)
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => createSandbox(org.key, { name: `burst-${i}` }, false)))
    const statuses = answers.map((r) => r.status).sort()
    expect(statuses).toEqual([201, 201, 429, 429, 429, 429, 429, 429, 429, 429])
    for (const refused of answers.filter((r) => r.status === 429)) expect(refused.json.error.details).toMatchObject({ resource: 'sandboxes', limit: 2 })
    expect(await liveSandboxes(org.key)).toHaveLength(2)
  }, 60_000)

  it("enforces a workspace's limit lower than its organization's, and never lets an organization key raise it above its own", async () => {
    const org = await t.newOrganization('Workspaces')
    expect((await setOrgLimits(org.id, { running_sandboxes: 3, deployments: 5 })).status).toBe(200)
    const small = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'small' } })).json
    const other = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'other' } })).json

    const tooHigh = await t.call('PATCH', `/api/v1/workspaces/${small.id}`, { key: org.key, body: { name: 'renamed', limits: { running_sandboxes: 4 } } })
    expect(tooHigh.status, tooHigh.text).toBe(400)
    expect(tooHigh.json.error.code).toBe('invalid')
    expect(tooHigh.json.error.message).toContain('limits.running_sandboxes')
    expect(tooHigh.json.error.details).toMatchObject({ field: 'limits.running_sandboxes', organization_limit: 3 })
    // Nothing changed: neither the limit nor the name that came with it.
    expect((await t.call('GET', `/api/v1/workspaces/${small.id}`, { key: org.key })).json.name).toBe('small')
    expect((await t.call('GET', `/api/v1/workspaces/${small.id}/limits`, { key: org.key })).json.resources.running_sandboxes).toMatchObject({ limit: 3, source: 'organization' })
    // An organization key cannot change its organization's own limits.
    expect((await t.call('PATCH', `/api/v1/organizations/${org.id}`, { key: org.key, body: { limits: { running_sandboxes: 100 } } })).status).toBe(403)

    const set = await t.call('PATCH', `/api/v1/workspaces/${small.id}`, { key: org.key, body: { limits: { running_sandboxes: 1, deployments: 1 } } })
    expect(set.status, set.text).toBe(200)
    expect((await createSandbox(org.key, { workspace_id: small.id })).status).toBe(201)
    const refused = await createSandbox(org.key, { workspace_id: small.id })
    expect(refused.status, refused.text).toBe(429)
    expect(refused.json.error.details).toMatchObject({ resource: 'running_sandboxes', limit: 1, current: 1, workspace_id: small.id })
    // The other workspace still has the organization's room.
    expect((await createSandbox(org.key, { workspace_id: other.id })).status).toBe(201)

    // Deployments: a cheap creation, checked the same way.
    expect((await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'one', workspace_id: small.id } })).status).toBe(201)
    const second = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'two', workspace_id: small.id } })
    expect(second.status, second.text).toBe(429)
    expect(second.json.error.details).toMatchObject({ resource: 'deployments', limit: 1, current: 1 })

    const report = (await t.call('GET', `/api/v1/workspaces/${small.id}/limits`, { key: org.key })).json
    expect(report.resources.running_sandboxes).toEqual({ limit: 1, used: 1, source: 'workspace' })
    expect(report.resources.deployments).toEqual({ limit: 1, used: 1, source: 'workspace' })
    expect(report.resources.computers).toEqual({ limit: 20, used: 0, source: 'platform' })
    // Another organization's limits are not found, whoever asks with its own key.
    expect((await t.call('GET', `/api/v1/organizations/${org.id}/limits`, { key: (await t.newOrganization('Stranger')).key })).status).toBe(404)
  }, 90_000)

  it('refuses a build past concurrent_builds and a snapshot once storage is full, writing nothing', async () => {
    const org = await t.newOrganization('Builds')
    expect((await setOrgLimits(org.id, { concurrent_builds: 1, storage_gb: 0 })).status).toBe(200)
    const dep = (await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'site' } })).json
    // One build in progress already (a version building, as a publish records it).
    await insertVersionRecord(t.platform.store, dep, { status: 'building' })
    const dir = await mkdtemp(join(tmpdir(), 'miosa-quota-src-'))
    await writeFile(join(dir, 'index.html'), '<h1>hi</h1>')
    const chunks: Buffer[] = []
    for await (const chunk of createTar({ cwd: dir }, ['index.html'])) chunks.push(Buffer.from(chunk as Uint8Array))
    await rm(dir, { recursive: true, force: true })
    const upload = await fetch(`${t.apiUrl}/api/v1/deployments/${dep.id}/publish/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.key}`, 'content-type': 'application/x-tar' },
      body: Buffer.concat(chunks),
    })
    const refused = (await upload.json()) as any
    expect(upload.status, JSON.stringify(refused)).toBe(429)
    expect(refused.error.details).toMatchObject({ resource: 'concurrent_builds', limit: 1, current: 1 })
    expect((await t.call('GET', `/api/v1/deployments/${dep.id}/versions`, { key: org.key })).json.data).toHaveLength(1)

    const box = await createSandbox(org.key)
    expect(box.status, box.text).toBe(201)
    const snapshot = await t.call('POST', `/api/v1/sandboxes/${box.json.id}/snapshots`, { key: org.key, body: {} })
    expect(snapshot.status, snapshot.text).toBe(429)
    expect(snapshot.json.error.details).toMatchObject({ resource: 'storage_gb', limit: 0, current: 0 })
    expect((await t.call('GET', `/api/v1/sandboxes/${box.json.id}/snapshots`, { key: org.key })).json.data).toHaveLength(0)
    expect((await t.call('GET', `/api/v1/sandboxes/${box.json.id}`, { key: org.key })).json.state).toBe('running')
  }, 60_000)

  it("refuses scaling a dynamic deployment's instances past the vcpus limit", async () => {
    const org = await t.newOrganization('Scale')
    expect((await setOrgLimits(org.id, { vcpus: 2 })).status).toBe(200)
    const dep = (await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'api', instances: 0 } })).json
    // A dynamic version serving production, written straight into the store (no image: nothing needs to start).
    const version = await insertVersionRecord(t.platform.store, dep, { release_kind: 'dynamic', release_sha256: 'e'.repeat(64) })
    await t.platform.store.deploymentRoutes.repoint({ organization_id: org.id }, {
      id: `rtc_${'q'.repeat(20)}`, organization_id: org.id, deployment_id: dep.id, environment: 'production', to_version_id: version.id, reason: 'publish', actor: 'key_test', created_at: new Date().toISOString(),
    })
    const refused = await t.call('PATCH', `/api/v1/deployments/${dep.id}`, { key: org.key, body: { instances: 3 } })
    expect(refused.status, refused.text).toBe(429)
    expect(refused.json.error.details).toMatchObject({ resource: 'vcpus', limit: 2, current: 0, requested: 3 })
    expect((await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json.instances).toBe(0)
    const scaled = await t.call('PATCH', `/api/v1/deployments/${dep.id}`, { key: org.key, body: { instances: 2 } })
    expect(scaled.status, scaled.text).toBe(200)
    expect((await t.call('GET', `/api/v1/organizations/${org.id}/limits`, { key: org.key })).json.resources.vcpus).toMatchObject({ limit: 2, used: 2 })
    expect((await t.call('PATCH', `/api/v1/deployments/${dep.id}`, { key: org.key, body: { instances: 0 } })).status).toBe(200)
  }, 30_000)

  it('shows and sets limits from the CLI, with --json', async () => {
    const org = await t.newOrganization('Cli Limits')
    const env = { MIOSA_API_URL: t.apiUrl, MIOSA_API_KEY: org.key }
    const ws = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'cli' } })).json

    const rootSet = await runCli(['limits', 'set', 'running_sandboxes=4', 'storage_gb=2.5', '--organization', org.id, '--json'], { env: { ...env, MIOSA_API_KEY: t.rootKey } })
    expect(rootSet.code, rootSet.stderr).toBe(0)
    expect(JSON.parse(rootSet.stdout).resources.storage_gb).toEqual({ limit: 2.5, used: 0, source: 'organization' })

    const shown = await runCli(['limits', '--json'], { env })
    expect(shown.code, shown.stderr).toBe(0)
    const report = JSON.parse(shown.stdout)
    expect(report.organization_id).toBe(org.id)
    expect(Object.keys(report.resources).sort()).toEqual(
      ['computers', 'concurrent_builds', 'deployments', 'docker_deploy_hosts', 'memory_mb', 'running_sandboxes', 'sandboxes', 'storage_gb', 'vcpus'],
    )
    expect(report.resources.running_sandboxes).toEqual({ limit: 4, used: 0, source: 'organization' })

    const wsSet = await runCli(['limits', 'set', 'running_sandboxes=1', '--workspace', ws.id, '--json'], { env })
    expect(wsSet.code, wsSet.stderr).toBe(0)
    expect(JSON.parse(wsSet.stdout).resources.running_sandboxes).toEqual({ limit: 1, used: 0, source: 'workspace' })
    const human = await runCli(['limits', '--workspace', ws.id], { env })
    expect(human.stdout).toMatch(/running_sandboxes\s+0\s+1\s+workspace/)

    const above = await runCli(['limits', 'set', 'running_sandboxes=9', '--workspace', ws.id, '--json'], { env })
    expect(above.code).toBe(1)
    expect(JSON.parse(above.stderr).error.code).toBe('invalid')
  }, 60_000)
})
