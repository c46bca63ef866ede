import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ContainerBuilder } from '../../src/builder/container-builder.js'
import { callApi, getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Deployment environments end to end, on the real Docker Engine: one deployment of a project
// runs version 1 in production, 2 in staging and 3 in preview/pr-42, each a small static
// site written in a `static` sandbox, each served by the edge at its own URL with its own
// content. Then promote moves version 2 from staging to production: production serves it on
// the next request, and nothing is built (no version, no snapshot, no plan, no build).

let t: TestPlatform
let key: string
let sandbox: any
const builderCalls = {
  build: vi.spyOn(ContainerBuilder.prototype, 'build'),
  plan: vi.spyOn(ContainerBuilder.prototype, 'plan'),
  captureSource: vi.spyOn(ContainerBuilder.prototype, 'captureSource'),
}

function builderRuns(): Record<string, number> {
  return Object.fromEntries(Object.entries(builderCalls).map(([name, spy]) => [name, spy.mock.calls.length]))
}

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)
const write = (path: string, content: string) => writeWorkspace(t, key, sandbox.id, { [path.replace(/^\/workspace\//, '')]: content })
const fetchLive = (url: string, path = '/') => getViaEdge(t, url, { path })

const page = (n: number) => `<!doctype html><html><head><title>Shop</title></head><body><h1 id="v">shop version ${n}</h1></body></html>\n`

beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Environments Org')).key
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'static', name: 'shop-dev', timeout: '1h' })
}, 180_000)

afterAll(async () => {
  for (const spy of Object.values(builderCalls)) spy.mockRestore()
  await t?.close()
}, 120_000)

describe.sequential('one deployment, three environments, promote without a build', () => {
  let project: any
  let deployment: any
  const versions: Record<string, any> = {}
  const urls: Record<string, string> = {}

  it('publishes version 1 to production, 2 to staging and 3 to preview/pr-42; each is served at its own URL', async () => {
    project = await api('POST', '/projects', { workspace_id: (await api('GET', '/workspaces')).data[0].id, name: 'Shop' })
    expect((await api('GET', `/projects/${project.id}/environments`)).data.map((e: any) => e.name)).toEqual(['production', 'staging'])
    await api('POST', `/projects/${project.id}/environments`, { name: 'preview/pr-42' })
    deployment = await api('POST', '/deployments', { name: 'Shop Site', project_id: project.id, workspace_id: project.workspace_id })

    for (const [n, environment] of [[1, 'production'], [2, 'staging'], [3, 'preview/pr-42']] as const) {
      await write('/workspace/index.html', page(n))
      const version = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id, kind: 'static', environment })
      expect(version, JSON.stringify(version)).toMatchObject({ version_number: n, status: 'ready', environment })
      versions[environment] = version
    }

    deployment = await api('GET', `/deployments/${deployment.id}`)
    for (const route of deployment.routes) urls[route.environment] = route.url
    const host = (url: string) => new URL(url).hostname
    const ws = host(deployment.url).split('.').slice(1).join('.')
    expect(host(urls.production as string)).toBe(`shop-site.${ws}`)
    expect(host(urls.staging as string)).toBe(`shop-site--staging.${ws}`)
    expect(host(urls['preview/pr-42'] as string)).toBe(`shop-site--preview-pr-42.${ws}`)
    expect(deployment.routes.map((r: any) => [r.environment, r.active_version_id])).toEqual([
      ['production', versions.production.id],
      ['staging', versions.staging.id],
      ['preview/pr-42', versions['preview/pr-42'].id],
    ])
    // A version's URL is the URL of the environment it was published to.
    for (const environment of ['production', 'staging', 'preview/pr-42']) expect(versions[environment].url).toBe(urls[environment])

    for (const [n, environment] of [[1, 'production'], [2, 'staging'], [3, 'preview/pr-42']] as const) {
      const live = await fetchLive(urls[environment] as string)
      expect(live.status, `${environment}: ${live.body}`).toBe(200)
      expect(live.body).toContain(`shop version ${n}`)
    }
    // An environment the project does not have is served nothing.
    expect((await fetchLive((urls.production as string).replace('shop-site.', 'shop-site--qa.'))).status).toBe(404)
    expect(builderRuns()).toEqual({ build: 3, plan: 3, captureSource: 3 })
  }, 300_000)

  it('promotes version 2 from staging to production: served at once, and nothing is built', async () => {
    const before = builderRuns()
    const versionRows = (await api('GET', `/deployments/${deployment.id}/versions?include_archived=true`)).data.length
    const result = await api('POST', `/deployments/${deployment.id}/promote`, { version_number: 2, environment: 'production' })
    expect(result.change).toMatchObject({ environment: 'production', from_version_id: versions.production.id, to_version_id: versions.staging.id, reason: 'promote' })
    expect(result.deployment.active_version_id).toBe(versions.staging.id)

    // The very next request to production gets version 2; the other environments are unchanged.
    expect((await fetchLive(urls.production as string)).body).toContain('shop version 2')
    expect((await fetchLive(urls.staging as string)).body).toContain('shop version 2')
    expect((await fetchLive(urls['preview/pr-42'] as string)).body).toContain('shop version 3')

    // No builder run: no snapshot, plan or build, and no new version.
    expect(builderRuns()).toEqual(before)
    expect((await api('GET', `/deployments/${deployment.id}/versions?include_archived=true`)).data).toHaveLength(versionRows)

    // An unknown environment is refused before anything moves.
    const refused = await t.call('POST', `/api/v1/deployments/${deployment.id}/promote`, { key, body: { version_number: 3, environment: 'qa' } })
    expect(refused.status).toBe(404)
    expect(refused.json.error.message).toContain('miosa environments create')
    expect((await fetchLive(urls.production as string)).body).toContain('shop version 2')
  }, 120_000)

  it('deleting preview/pr-42 stops serving it; production and staging keep serving', async () => {
    const gone = await api('DELETE', `/projects/${project.id}/environments/${encodeURIComponent('preview/pr-42')}`)
    expect(gone).toMatchObject({ deleted: true, routes_removed: 1 })
    expect((await fetchLive(urls['preview/pr-42'] as string)).status).toBe(404)
    expect((await fetchLive(urls.production as string)).body).toContain('shop version 2')
    expect((await fetchLive(urls.staging as string)).body).toContain('shop version 2')
  }, 60_000)
})
