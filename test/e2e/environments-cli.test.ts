import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import { insertVersionRecord } from '../helpers/version-records.js'
import type { TestPlatform } from '../helpers/platform.js'

// `miosa environments list|create|delete <project>` and `promote --env` through the real bin
// (dist/cli/main.js: `npm run build` first) against a listening platform. Versions are
// written into the store: building is not the point here.

let t: TestPlatform
let tmp: string
let org: { id: string; key: string }
let workspace: { id: string }
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: org.key, home: tmp }))

beforeAll(async () => {
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  tmp = await mkdtemp(join(tmpdir(), 'miosa-envs-cli-'))
  org = await t.newOrganization('Envs CLI Org')
  workspace = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Envs CLI', slug: `envs-cli-${Date.now().toString(36)}` } })).json
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

describe('miosa environments', () => {
  it('lists, creates and deletes a project’s environments (project by slug or id); production stays', async () => {
    const project = (await t.call('POST', '/api/v1/projects', { key: org.key, body: { workspace_id: workspace.id, name: 'Shop' } })).json
    expect((await json(['environments', 'list', 'shop'])).map((e: { name: string }) => e.name)).toEqual(['production', 'staging'])

    const created = await json(['environments', 'create', 'shop', 'preview/pr-42'])
    expect(created).toMatchObject({ name: 'preview/pr-42', slug: 'preview-pr-42', project_id: project.id })
    const human = await miosa(['environments', 'list', project.id])
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/NAME\s+SLUG/)
    expect(human.stdout).toContain('preview-pr-42')

    const bad = await miosa(['environments', 'create', 'shop', 'Preview/PR 42'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('name')
    const prod = await miosa(['environments', 'delete', 'shop', 'production'])
    expect(prod.code).toBe(1)
    expect(prod.stderr).toContain('production cannot be deleted')

    const deleted = await json(['environments', 'delete', 'shop', 'preview/pr-42'])
    expect(deleted).toEqual({ project_id: project.id, name: 'preview/pr-42', deleted: true, routes_removed: 0 })
    const missing = await miosa(['environments', 'list', 'no-such-project'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('project no-such-project not found')
  }, 60_000)

  it('promote --env and rollback --env take a project’s environments and refuse others with the way to create them', async () => {
    const project = (await t.call('POST', '/api/v1/projects', { key: org.key, body: { workspace_id: workspace.id, name: 'Clinic' } })).json
    const dep = (await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'clinic-site', project_id: project.id, workspace_id: workspace.id } })).json
    for (let i = 0; i < 2; i++) await insertVersionRecord(t.platform.store, dep, { source_sha256: null, release_sha256: 'b'.repeat(64) })
    await json(['environments', 'create', 'clinic', 'qa'])
    const promoted = await json(['promote', 'clinic-site', '--version', '2', '--env', 'qa'])
    expect(promoted.change).toMatchObject({ environment: 'qa', reason: 'promote' })
    const human = await miosa(['rollback', 'clinic-site', '--to', '1', '--env', 'qa'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain('clinic-site--qa.')
    const refused = await miosa(['promote', 'clinic-site', '--version', '2', '--env', 'canary'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`miosa environments create ${project.id} canary`)
    const shown = await miosa(['deployments', 'get', 'clinic-site'])
    expect(shown.stdout).toMatch(/ENVIRONMENT\s+ACTIVE_VERSION_ID\s+URL/)
    expect(shown.stdout).toContain('clinic-site--staging.')
  }, 60_000)
})
