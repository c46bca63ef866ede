import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs, runCli } from '../helpers/cli.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { loadThroughEdges, timeUntilServed } from '../helpers/edge-load.js'
import { createTestDatabase } from '../helpers/postgres.js'
import type { TestDatabase } from '../helpers/postgres.js'
import { callApi, newOrganizationKey, platformIdOf } from '../helpers/server-api.js'
import { startServerProcess } from '../helpers/server-process.js'
import type { ServerProcess } from '../helpers/server-process.js'

// A fleet as an operator runs one: PostgreSQL, the platform (`miosa server`, role all) and
// two more edges (`miosa server --role edge`), each its own OS process of the built binary.
// Requests go through all three edges at once while routes move; each edge must serve a
// change within a second of the API's answer, and none may fail, also while the platform
// process restarts.

let db: TestDatabase
let dataDir: string
let home: string
let platform: ServerProcess
let edges: ServerProcess[] = []
let key: string
let platformId: string | undefined
const propagation: number[] = []
const { json } = cliAs(() => ({ apiUrl: platform.apiUrl, key, home }))

const env = () => ({
  MIOSA_DATABASE_URL: db.url,
  MIOSA_LOG_LEVEL: 'warn',
  MIOSA_SANDBOX_WARM_POOL: '0',
  MIOSA_RATE_LIMIT_RPS: '0',
  MIOSA_EDGE_RATE_LIMIT_RPS: '0',
  MIOSA_INSTANCE_RECONCILE_INTERVAL_MS: '250',
})
const allEdges = () => [platform.edgeUrl, ...edges.map((e) => e.edgeUrl)]

const api = (method: string, path: string, body?: unknown) => callApi(platform.apiUrl, key, method, path, body)

/** Milliseconds from the API's answer until every edge serves `body`; the slowest is recorded. */
async function everyEdgeServes(host: string, body: string): Promise<number[]> {
  const times = await Promise.all(allEdges().map((edgeUrl) => timeUntilServed(edgeUrl, host, body, 5_000)))
  propagation.push(...times)
  return times
}

async function site(dir: string, marker: string): Promise<string> {
  await writeFile(join(dir, 'index.html'), `${marker}\n`)
  return dir
}

beforeAll(async () => {
  db = await createTestDatabase()
  dataDir = await mkdtemp(join(tmpdir(), 'miosa-fleet-'))
  home = await mkdtemp(join(tmpdir(), 'miosa-fleet-home-'))
  platform = await startServerProcess(['--data-dir', dataDir], env())
  // The edges share the data dir's blob store (a fleet on several machines shares one S3-compatible store).
  edges = await Promise.all([1, 2].map(() => startServerProcess(['--role', 'edge', '--data-dir', dataDir], env())))
  key = await newOrganizationKey(platform.apiUrl, platform.started.root_key as string, 'Fleet Org')
  platformId = await platformIdOf(db.url)
}, 120_000)

afterAll(async () => {
  await Promise.all([platform, ...edges].map((p) => p?.stop()))
  if (platformId !== undefined) await removePlatformResources(platformId)
  await db?.drop()
  for (const dir of [dataDir, home]) if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  if (propagation.length > 0) {
    const sorted = [...propagation].sort((a, b) => a - b)
    console.log(`fleet: route change seen by every edge: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms over ${sorted.length} edge-changes`)
  }
}, 120_000)

describe.sequential('a fleet: the platform and two more edges on one PostgreSQL', () => {
  it('an edge without the PostgreSQL store refuses to start and says what it needs', async () => {
    const result = await runCli(['server', '--role', 'edge', '--port', '0', '--edge-port', '0', '--data-dir', join(dataDir, 'lonely')], { env: { MIOSA_DATABASE_URL: undefined } })
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('MIOSA_DATABASE_URL')
  }, 30_000)

  it('publish, rollback and promote of a static site under load through three edges: no failed request, every edge serves each change within 1 s', async () => {
    const dir = await mkdtemp(join(home, 'site-'))
    const v1 = await json(['deploy', await site(dir, 'site v1'), '--name', 'fleet-site'])
    const host = new URL(v1.url).host
    await everyEdgeServes(host, 'site v1')

    const running = loadThroughEdges(allEdges(), host, { workers: 3 })
    await json(['deploy', await site(dir, 'site v2'), '--name', 'fleet-site'])
    await everyEdgeServes(host, 'site v2')

    await api('POST', `/deployments/${v1.deployment_id}/rollback`, { version_number: 1 })
    expect(Math.max(...(await everyEdgeServes(host, 'site v1')))).toBeLessThan(1000)

    const staged = await json(['deploy', await site(dir, 'site v3'), '--name', 'fleet-site', '--env', 'staging'])
    await api('POST', `/deployments/${v1.deployment_id}/promote`, { version_number: staged.version_number, environment: 'production' })
    expect(Math.max(...(await everyEdgeServes(host, 'site v3')))).toBeLessThan(1000)

    const during = await running.stop()
    expect(during.failures).toEqual([])
    for (const marker of ['site v1', 'site v2', 'site v3']) expect(during.bodies.get(marker), marker).toBeGreaterThan(0)
  }, 300_000)

  it('a dynamic app under load through three edges: rollback and scale 1 → 3 → 1 with no failed request, every edge on the new version within 1 s', async () => {
    const dir = await mkdtemp(join(home, 'app-'))
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'fleet-app', private: true, scripts: { start: 'node server.js' } }))
    await writeFile(
      join(dir, 'server.js'),
      "require('node:http').createServer((req, res) => res.end(`app v${process.env.MIOSA_VERSION}`)).listen(Number(process.env.PORT))\n",
    )
    const v1 = await json(['deploy', dir, '--name', 'fleet-app'])
    expect(v1, JSON.stringify(v1)).toMatchObject({ status: 'ready', release_kind: 'dynamic' })
    await writeFile(join(dir, 'README.md'), 'second version\n')
    await json(['deploy', dir, '--name', 'fleet-app'])
    const host = new URL(v1.url).host
    await everyEdgeServes(host, 'app v2')

    const running = loadThroughEdges(allEdges(), host, { workers: 3 })
    await api('POST', `/deployments/${v1.deployment_id}/rollback`, { version_number: 1 })
    expect(Math.max(...(await everyEdgeServes(host, 'app v1')))).toBeLessThan(1000)
    await api('PATCH', `/deployments/${v1.deployment_id}`, { instances: 3 })
    await expect
      .poll(async () => (await api('GET', `/deployments/${v1.deployment_id}/instances`)).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 250 })
      .toBe(3)
    await api('PATCH', `/deployments/${v1.deployment_id}`, { instances: 1 })
    await expect.poll(async () => (await api('GET', `/deployments/${v1.deployment_id}/instances`)).data.length, { timeout: 60_000, interval: 250 }).toBe(1)
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.bodies.get('app v1')).toBeGreaterThan(0)
    expect(during.sent).toBeGreaterThan(100)
  }, 600_000)

  it('the platform process restarts under load: the edges keep serving, and see the next rollback within 1 s', async () => {
    const deployment = (await api('GET', '/deployments?slug=fleet-site')).data[0]
    const host = new URL(deployment.url).host
    const others = edges.map((e) => e.edgeUrl)
    const running = loadThroughEdges(others, host, { workers: 3 })
    expect(await platform.stop()).toBe(0)
    platform = await startServerProcess(['--data-dir', dataDir], env())
    await api('POST', `/deployments/${deployment.id}/rollback`, { version_number: 2 })
    expect(Math.max(...(await everyEdgeServes(host, 'site v2')))).toBeLessThan(1000)
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.sent).toBeGreaterThan(100)
  }, 300_000)
})
