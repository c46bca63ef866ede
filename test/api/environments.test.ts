import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DeploymentRecord, VersionRecord } from '../../src/store/store.js'
import { startTestPlatform } from '../helpers/platform.js'
import { insertVersionRecord } from '../helpers/version-records.js'
import type { TestPlatform } from '../helpers/platform.js'

// Deployment environments through the API: the defaults every project gets, names, create
// and delete rules, their URLs on the wire, and an unknown environment refused by publish,
// promote and rollback before anything is written. Versions are written straight into the
// store (builds are not the point here; test/e2e/environments.test.ts builds and serves).

let t: TestPlatform
let org: { id: string; key: string }
let workspace: { id: string; slug: string }

beforeAll(async () => {
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  org = await t.newOrganization('Environments Org')
  const ws = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Envs', slug: `envs-${Date.now().toString(36)}` } })
  expect(ws.status).toBe(201)
  workspace = { id: ws.json.id, slug: ws.json.slug }
})

afterAll(async () => {
  await t?.close()
})

async function createProject(name = 'Shop'): Promise<{ id: string; slug: string }> {
  const res = await t.call('POST', '/api/v1/projects', { key: org.key, body: { name, workspace_id: workspace.id } })
  expect(res.status, res.text).toBe(201)
  return res.json
}

async function createDeployment(body: Record<string, unknown>): Promise<{ id: string; url: string } & Record<string, any>> {
  const res = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { workspace_id: workspace.id, ...body } })
  expect(res.status, res.text).toBe(201)
  return res.json
}

function insertVersion(dep: { id: string } & Record<string, any>, environment = 'production'): Promise<VersionRecord> {
  return insertVersionRecord(t.platform.store, dep as DeploymentRecord, { environment })
}

async function writes(depId: string): Promise<{ versions: number; changes: number }> {
  const scope = { organization_id: org.id }
  return {
    versions: (await t.platform.store.versions.find(scope, { deployment_id: depId })).length,
    changes: (await t.platform.store.routeChanges.find(scope, { deployment_id: depId })).length,
  }
}

describe('environments of a project', () => {
  it('every project has production and staging from its creation', async () => {
    const project = await createProject()
    const list = await t.call('GET', `/api/v1/projects/${project.id}/environments`, { key: org.key })
    expect(list.status, list.text).toBe(200)
    expect(list.json.data.map((e: { name: string; slug: string }) => [e.name, e.slug])).toEqual([
      ['production', 'production'],
      ['staging', 'staging'],
    ])
    for (const e of list.json.data) expect(e).toMatchObject({ id: expect.stringMatching(/^env_/), organization_id: org.id, project_id: project.id })
  })

  it('names are validated; the slug is the name with / → -, unique in the project', async () => {
    const project = await createProject('Names')
    const create = (name: unknown) => t.call('POST', `/api/v1/projects/${project.id}/environments`, { key: org.key, body: { name } })
    for (const name of ['qa', 'canary', 'preview/pr-42', 'a', 'x1/y-2', 'a'.repeat(40)]) {
      const res = await create(name)
      expect(res.status, `${name}: ${res.text}`).toBe(201)
      expect(res.json).toMatchObject({ name, slug: name.replace('/', '-'), project_id: project.id })
    }
    for (const name of ['Prod', 'a/b/c', 'a//b', '/a', 'a/', '-a', 'a-', 'pr_42', 'pr 42', '', 'a'.repeat(41), 'preview/-x', 42]) {
      const res = await create(name)
      expect(res.status, `${String(name)}: ${res.text}`).toBe(400)
      expect(res.json.error.message, String(name)).toContain('name')
    }
    const again = await create('qa')
    expect(again.status).toBe(409)
    expect(again.json.error.message).toContain('"qa" already exists')
    // preview-pr-42 would be reached at the same URL as preview/pr-42.
    const clash = await create('preview-pr-42')
    expect(clash.status).toBe(409)
    expect(clash.json.error.message).toContain('preview/pr-42')
    const list = await t.call('GET', `/api/v1/projects/${project.id}/environments`, { key: org.key })
    expect(list.json.data.map((e: { name: string }) => e.name).slice(0, 2)).toEqual(['production', 'staging'])
    expect(list.json.data).toHaveLength(8)
  })

  it('production cannot be deleted; others can, by their URL-encoded name; unknown ones are 404', async () => {
    const project = await createProject('Deletes')
    const prod = await t.call('DELETE', `/api/v1/projects/${project.id}/environments/production`, { key: org.key })
    expect(prod.status).toBe(409)
    expect(prod.json.error.message).toContain('production')
    await t.call('POST', `/api/v1/projects/${project.id}/environments`, { key: org.key, body: { name: 'preview/pr-42' } })
    const gone = await t.call('DELETE', `/api/v1/projects/${project.id}/environments/preview%2Fpr-42`, { key: org.key })
    expect(gone.status, gone.text).toBe(200)
    expect(gone.json).toEqual({ project_id: project.id, name: 'preview/pr-42', deleted: true, routes_removed: 0 })
    const staging = await t.call('DELETE', `/api/v1/projects/${project.id}/environments/staging`, { key: org.key })
    expect(staging.status).toBe(200)
    const missing = await t.call('DELETE', `/api/v1/projects/${project.id}/environments/qa`, { key: org.key })
    expect(missing.status).toBe(404)
    const list = await t.call('GET', `/api/v1/projects/${project.id}/environments`, { key: org.key })
    expect(list.json.data.map((e: { name: string }) => e.name)).toEqual(['production'])
    const noProject = await t.call('GET', `/api/v1/projects/prj_nosuchproject/environments`, { key: org.key })
    expect(noProject.status).toBe(404)
  })

  it('an environment is deleted with its env vars: made again under the same name, it starts empty', async () => {
    const project = await createProject('Env Var Cleanup')
    const dep = await createDeployment({ name: 'cleanup-app', project_id: project.id })
    await t.call('POST', `/api/v1/projects/${project.id}/environments`, { key: org.key, body: { name: 'qa' } })
    const set = await t.call('POST', `/api/v1/deployments/${dep.id}/env`, { key: org.key, body: { environment: 'qa', key: 'TOKEN', value: 'qa-only-value', is_secret: true } })
    expect(set.status, set.text).toBe(200)
    await t.call('POST', `/api/v1/deployments/${dep.id}/env`, { key: org.key, body: { environment: 'staging', key: 'TOKEN', value: 'staging-value', is_secret: true } })
    expect((await t.call('DELETE', `/api/v1/projects/${project.id}/environments/qa`, { key: org.key })).status).toBe(200)
    await t.call('POST', `/api/v1/projects/${project.id}/environments`, { key: org.key, body: { name: 'qa' } })
    const qa = await t.call('GET', `/api/v1/deployments/${dep.id}/env?environment=qa`, { key: org.key })
    expect(qa.json.data).toEqual([])
    const staging = await t.call('GET', `/api/v1/deployments/${dep.id}/env?environment=staging`, { key: org.key })
    expect(staging.json.data.map((v: { key: string }) => v.key)).toEqual(['TOKEN'])
  })

  it('a project is deleted with its environments', async () => {
    const project = await createProject('Short Lived')
    const res = await t.call('DELETE', `/api/v1/projects/${project.id}`, { key: org.key })
    expect(res.status, res.text).toBe(200)
    expect(await t.platform.store.environments.find({ organization_id: org.id }, { project_id: project.id })).toEqual([])
  })
})

describe('environments of a deployment', () => {
  it('routes list every environment with its URL; versions carry the URL of their environment; the edge resolves each', async () => {
    const project = await createProject('Routes')
    await t.call('POST', `/api/v1/projects/${project.id}/environments`, { key: org.key, body: { name: 'preview/pr-42' } })
    const dep = await createDeployment({ name: 'Store Front', project_id: project.id })
    const base = `${workspace.slug}\\.localhost:\\d+`
    expect(dep.url).toMatch(new RegExp(`^http://store-front\\.${base}$`))
    expect(dep.routes).toEqual([
      { environment: 'production', url: dep.url, active_version_id: null, updated_at: null },
      { environment: 'staging', url: expect.stringMatching(new RegExp(`^http://store-front--staging\\.${base}$`)), active_version_id: null, updated_at: null },
      { environment: 'preview/pr-42', url: expect.stringMatching(new RegExp(`^http://store-front--preview-pr-42\\.${base}$`)), active_version_id: null, updated_at: null },
    ])

    const v1 = await insertVersion(dep, 'production')
    const v2 = await insertVersion(dep, 'staging')
    const v3 = await insertVersion(dep, 'preview/pr-42')
    for (const [v, environment] of [[v1, 'production'], [v2, 'staging'], [v3, 'preview/pr-42']] as const) {
      const res = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v.id, environment } })
      expect(res.status, res.text).toBe(200)
    }
    const got = (await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json
    expect(got.active_version_id).toBe(v1.id)
    expect(got.routes.map((r: { environment: string; active_version_id: string }) => [r.environment, r.active_version_id])).toEqual([
      ['production', v1.id],
      ['staging', v2.id],
      ['preview/pr-42', v3.id],
    ])
    const versions = (await t.call('GET', `/api/v1/deployments/${dep.id}/versions`, { key: org.key })).json.data
    const urlOf = (env: string) => got.routes.find((r: { environment: string }) => r.environment === env).url
    expect(versions.map((v: { environment: string; url: string }) => [v.environment, v.url])).toEqual([
      ['preview/pr-42', urlOf('preview/pr-42')],
      ['staging', urlOf('staging')],
      ['production', urlOf('production')],
    ])
    expect((await t.call('GET', `/api/v1/versions/${v3.id}`, { key: org.key })).json.url).toBe(urlOf('preview/pr-42'))

    const resolve = (environmentSlug?: string) => t.platform.services.deployments.resolveApp({ deploymentSlug: 'store-front', workspaceSlug: workspace.slug, environmentSlug })
    expect(await resolve()).toMatchObject({ environment: 'production', versionId: v1.id })
    expect(await resolve('staging')).toMatchObject({ environment: 'staging', versionId: v2.id })
    expect(await resolve('preview-pr-42')).toMatchObject({ environment: 'preview/pr-42', versionId: v3.id })
    expect(await resolve('qa')).toBeUndefined()
    // production has one URL: the plain one.
    expect(await resolve('production')).toBeUndefined()

    // Deleting an environment removes its route: it is no longer served, and the others are untouched.
    const deleted = await t.call('DELETE', `/api/v1/projects/${project.id}/environments/preview%2Fpr-42`, { key: org.key })
    expect(deleted.json.routes_removed).toBe(1)
    expect(await resolve('preview-pr-42')).toBeUndefined()
    expect(await resolve('staging')).toMatchObject({ versionId: v2.id })
    const after = (await t.call('GET', `/api/v1/deployments/${dep.id}`, { key: org.key })).json
    expect(after.routes.map((r: { environment: string }) => r.environment)).toEqual(['production', 'staging'])
    // Its versions stay, and can be promoted elsewhere.
    const moved = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v3.id, environment: 'staging' } })
    expect(moved.status, moved.text).toBe(200)
    expect(moved.json.version.url).toBe(urlOf('preview/pr-42'))
  })

  it('a deployment outside a project has production and staging only', async () => {
    const dep = await createDeployment({ name: 'Loose App' })
    expect(dep.routes.map((r: { environment: string; url: string }) => [r.environment, r.url])).toEqual([
      ['production', dep.url],
      ['staging', dep.url.replace('loose-app.', 'loose-app--staging.')],
    ])
    const v1 = await insertVersion(dep)
    const staging = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v1.id, environment: 'staging' } })
    expect(staging.status, staging.text).toBe(200)
    expect(await t.platform.services.deployments.resolveApp({ deploymentSlug: 'loose-app', workspaceSlug: workspace.slug, environmentSlug: 'staging' })).toMatchObject({
      environment: 'staging',
      versionId: v1.id,
    })
    const before = await writes(dep.id)
    const qa = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v1.id, environment: 'qa' } })
    expect(qa.status).toBe(400)
    expect(qa.json.error.details.field).toBe('environment')
    expect(qa.json.error.message).toContain('production and staging')
    expect(await writes(dep.id)).toEqual(before)
  })

  it('an unknown environment is a 4xx from publish, promote and rollback, and nothing is written', async () => {
    const project = await createProject('Unknown')
    const dep = await createDeployment({ name: 'Careful App', project_id: project.id })
    const v1 = await insertVersion(dep)
    const ok = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v1.id } })
    expect(ok.status).toBe(200)
    const before = await writes(dep.id)
    const cases: [string, string, Record<string, unknown>][] = [
      ['promote', `/api/v1/deployments/${dep.id}/promote`, { version_id: v1.id, environment: 'qa' }],
      ['rollback', `/api/v1/deployments/${dep.id}/rollback`, { version_number: 1, environment: 'preview/pr-7' }],
      // The environment is checked before the sandbox is even looked at.
      ['publish', `/api/v1/deployments/${dep.id}/publish`, { sandbox_id: 'sbx_nosuchsandbox', environment: 'qa' }],
      ['publish by name', '/api/v1/publish', { name: 'Careful App', workspace_id: workspace.id, sandbox_id: 'sbx_nosuchsandbox', environment: 'canary' }],
      ['restart', `/api/v1/deployments/${dep.id}/restart`, { environment: 'qa' }],
    ]
    for (const [what, path, body] of cases) {
      const res = await t.call('POST', path, { key: org.key, body })
      expect(res.status, `${what}: ${res.text}`).toBe(404)
      expect(res.json.error.message, what).toMatch(/environment "(qa|preview\/pr-7|canary)" does not exist in project/)
      expect(res.json.error.message, what).toContain(`miosa environments create ${project.id}`)
    }
    const upload = await t.call('POST', `/api/v1/deployments/${dep.id}/publish/upload?environment=qa`, { key: org.key, rawBody: 'not a tar', headers: { 'content-type': 'application/x-tar' } })
    expect(upload.status, upload.text).toBe(404)
    expect(await writes(dep.id)).toEqual(before)

    // A first publish by name into a project's unknown environment creates no deployment.
    const fresh = await t.call('POST', '/api/v1/publish', {
      key: org.key,
      body: { name: 'Never Made', workspace_id: workspace.id, project_id: project.id, sandbox_id: 'sbx_nosuchsandbox', environment: 'qa' },
    })
    expect(fresh.status).toBe(404)
    expect((await t.call('GET', '/api/v1/deployments?slug=never-made', { key: org.key })).json.data).toEqual([])
    const noProject = await t.call('POST', '/api/v1/publish', {
      key: org.key,
      body: { name: 'Never Made', workspace_id: workspace.id, project_id: 'prj_nosuchproject', sandbox_id: 'sbx_nosuchsandbox' },
    })
    expect(noProject.status).toBe(404)
    expect(noProject.json.error.message).toBe('project prj_nosuchproject not found')

    // A malformed name is a 400 naming the field.
    const bad = await t.call('POST', `/api/v1/deployments/${dep.id}/promote`, { key: org.key, body: { version_id: v1.id, environment: 'Pre View' } })
    expect(bad.status).toBe(400)
  })

  it('deployment slugs never contain --: the separator of <deployment>--<environment>', async () => {
    const res = await t.call('POST', '/api/v1/deployments', { key: org.key, body: { name: 'x', slug: 'my--app', workspace_id: workspace.id } })
    expect(res.status).toBe(400)
    expect(res.text).toContain('slug')
    expect(res.json.error.message).toContain('--')
    const derived = await createDeployment({ name: 'my -- app' })
    expect(derived.slug).toBe('my-app')
  })
})
