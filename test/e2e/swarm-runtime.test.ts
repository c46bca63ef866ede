import { Agent } from 'node:http'
import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { requireSwarmManager } from '../../src/runtime/swarm/swarm-instances.js'
import { callApi, getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// The platform with `runtime: swarm`: a small Node app published from a sandbox runs as
// Swarm services behind the real edge, scales 1 → 2, and rolls back with requests
// running throughout, none failing. Needs the daemon to be a Swarm manager (scripts/test
// makes it one).

const docker = new Docker()
const manager = await requireSwarmManager(docker).then(
  () => true,
  () => false,
)

let t: TestPlatform
let key: string
let sandbox: any

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)
const agent = new Agent({ keepAlive: true, maxSockets: 8 })
const fetchLive = (url: string) => getViaEdge(t, url, { agent })

const app = (version: string): Record<string, string> => ({
  'package.json': JSON.stringify({ name: 'swarm-app', private: true, scripts: { start: 'node server.js' } }),
  'server.js': `require('node:http').createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : 'app ${version}')).listen(Number(process.env.PORT))\n`,
})

/** Requests in two loops until stop(); every answer checked. */
function load(url: string) {
  const bodies = new Map<string, number>()
  const failures: string[] = []
  let running = true
  const loops = Array.from({ length: 2 }, async () => {
    while (running) {
      try {
        const res = await fetchLive(url)
        if (res.status !== 200) failures.push(`${res.status} ${res.body.slice(0, 200)}`)
        else bodies.set(res.body, (bodies.get(res.body) ?? 0) + 1)
      } catch (error) {
        failures.push(String(error))
      }
    }
  })
  return {
    async stop() {
      running = false
      await Promise.all(loops)
      return { failures, bodies }
    },
  }
}

const services = async (deploymentId: string) =>
  docker.listServices({ filters: { label: [`miosa.deployment_id=${deploymentId}`, `miosa.platform=${t.platformId}`, 'miosa.kind=instance'] } })

describe('the runtime setting', () => {
  it('takes docker (the default) or swarm, and names the flag when given anything else', () => {
    expect(loadConfig({}, {}).runtime).toBe('docker')
    expect(loadConfig({}, { MIOSA_RUNTIME: 'swarm' }).runtime).toBe('swarm')
    expect(loadConfig({ runtime: 'docker' }, { MIOSA_RUNTIME: 'swarm' }).runtime).toBe('docker')
    expect(() => loadConfig({ runtime: 'kubernetes' }, {})).toThrow('--runtime / MIOSA_RUNTIME: must be docker or swarm')
  })
})

describe.skipIf(!manager)(`dynamic deployments on the Swarm runtime${manager ? '' : ' (skipped: the Docker daemon is not a Swarm manager; run `docker swarm init`)'}`, () => {
  let deployment: any
  let v1: any

  beforeAll(async () => {
    t = await startTestPlatform({ runtime: 'swarm', instanceReconcileIntervalMs: 250 })
    key = (await t.newOrganization('Swarm Org')).key
    sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'swarm-app-dev', timeout: '1h' })
    await writeWorkspace(t, key, sandbox.id, app('v1'))
  }, 300_000)

  afterAll(async () => {
    agent.destroy()
    await t?.close()
  }, 120_000)

  it('publishes a Node app that runs as a Swarm service and answers through the edge', async () => {
    deployment = await api('POST', '/deployments', {
      name: 'swarm-app',
      health_check: { path: '/healthz', interval_seconds: 0.5, grace_seconds: 10 },
      deploy_timeout_seconds: 60,
      drain_timeout_seconds: 2,
    })
    v1 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(v1, JSON.stringify(v1)).toMatchObject({ version_number: 1, status: 'ready', release_kind: 'dynamic' })
    expect(await fetchLive(deployment.url)).toMatchObject({ status: 200, body: 'app v1' })
    const running = await services(deployment.id)
    expect(running).toHaveLength(1)
    expect(running[0]?.Spec?.Labels).toMatchObject({ 'miosa.version_id': v1.id })
    // Its logs come from the task's container.
    const logs = await t.call('GET', `/api/v1/deployments/${deployment.id}/logs`, { key })
    expect(logs.status).toBe(200)
  }, 600_000)

  it('scales 1 → 2 under load with no failed request: two services, both serving', async () => {
    const running = load(deployment.url)
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 2 })
    await expect
      .poll(async () => (await api('GET', `/deployments/${deployment.id}/instances`)).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 250 })
      .toBe(2)
    expect(await services(deployment.id)).toHaveLength(2)
    await new Promise((r) => setTimeout(r, 500))
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.bodies.get('app v1')).toBeGreaterThan(0)
  }, 300_000)

  it('publishes v2, then rolls back to v1 under load with no failed request', async () => {
    await writeWorkspace(t, key, sandbox.id, app('v2'))
    const v2 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(v2, JSON.stringify(v2)).toMatchObject({ version_number: 2, status: 'ready' })
    expect((await fetchLive(deployment.url)).body).toBe('app v2')
    const running = load(deployment.url)
    await new Promise((r) => setTimeout(r, 300))
    const result = await api('POST', `/deployments/${deployment.id}/rollback`, { version_number: 1 })
    expect(result.deployment.active_version_id).toBe(v1.id)
    expect((await fetchLive(deployment.url)).body).toBe('app v1')
    await new Promise((r) => setTimeout(r, 300))
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.bodies.get('app v2')).toBeGreaterThan(0)
    expect(during.bodies.get('app v1')).toBeGreaterThan(0)
    // Version 2's services drained and went; version 1 runs as many as asked.
    await expect
      .poll(async () => (await services(deployment.id)).map((s) => s.Spec?.Labels?.['miosa.version_id']), { timeout: 30_000, interval: 250 })
      .toEqual([v1.id, v1.id])
  }, 600_000)
})
