import { Agent } from 'node:http'
import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callApi, getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Dynamic apps from a real sandbox on the real Docker Engine: an Express app is built into
// an image and served by runtime instances behind the edge. Zero downtime is asserted with
// requests running through every change (each response checked), a version that never gets
// healthy fails while the old one serves, a Procfile release command gates go-live, a
// killed instance is replaced, and a server restart re-adopts running instances.

const docker = new Docker()
let t: TestPlatform
let key: string
let sandbox: any

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)
const write = (path: string, content: string) => writeWorkspace(t, key, sandbox.id, { [path.replace(/^\/workspace\//, '')]: content })
const agent = new Agent({ keepAlive: true, maxSockets: 16 })
const fetchLive = (url: string) => getViaEdge(t, url, { agent })

/**
 * Requests from `workers` loops until stop() (bounded: at most `max` in all); every
 * response is checked. Answers what each got.
 */
function load(url: string, o: { workers?: number; max?: number } = {}) {
  const bodies = new Map<string, number>()
  const failures: string[] = []
  let sent = 0
  let running = true
  const max = o.max ?? 20_000
  const loops = Array.from({ length: o.workers ?? 4 }, async () => {
    while (running && sent < max) {
      sent++
      try {
        const res = await fetchLive(url)
        if (res.status !== 200) failures.push(`${res.status} ${res.body.slice(0, 200)}`)
        else bodies.set(res.body.split(' ')[1] ?? res.body, (bodies.get(res.body.split(' ')[1] ?? res.body) ?? 0) + 1)
      } catch (error) {
        failures.push(String(error))
      }
    }
  })
  return {
    async stop() {
      running = false
      await Promise.all(loops)
      return { sent, failures, bodies }
    },
  }
}

const EXPRESS_APP: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'clinic-api', private: true, scripts: { start: 'node server.js' }, dependencies: { express: '^4.21.2' } }),
  'server.js': [
    "const express = require('express')",
    "const fs = require('node:fs')",
    'const app = express()',
    "const migrated = fs.existsSync('/tmp/migrated') ? 'migrated' : 'plain'",
    "app.get('/', (req, res) => res.send(`clinic v${process.env.MIOSA_VERSION} ${migrated}`))",
    "app.get('/healthz', (req, res) => res.send('ok'))",
    'app.listen(Number(process.env.PORT), () => console.log(`listening on ${process.env.PORT}`))',
    '',
  ].join('\n'),
}

async function instanceContainers(deploymentId: string) {
  return docker.listContainers({ all: true, filters: { label: [`miosa.deployment_id=${deploymentId}`, `miosa.platform=${t.platformId}`, 'miosa.kind=instance'] } })
}

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Dynamic Org')).key
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'clinic-api-dev', timeout: '1h' })
  for (const [path, content] of Object.entries(EXPRESS_APP)) await write(`/workspace/${path}`, content)
}, 120_000)

afterAll(async () => {
  agent.destroy()
  await t?.close()
}, 120_000)

describe.sequential('dynamic deployments', () => {
  let deployment: any
  let v1: any

  it('builds an Express app from the sandbox into an image and serves it from a runtime instance', async () => {
    deployment = await api('POST', '/deployments', {
      name: 'clinic-api',
      health_check: { path: '/healthz', interval_seconds: 0.5, grace_seconds: 10 },
      deploy_timeout_seconds: 60,
      drain_timeout_seconds: 5,
    })
    v1 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(v1, JSON.stringify(v1)).toMatchObject({ version_number: 1, status: 'ready', release_kind: 'dynamic' })
    expect(v1.plan).toMatchObject({ kind: 'dynamic', detected: 'node', start: ['npm', 'start'] })
    expect(v1.release_sha256).toMatch(/^[0-9a-f]{64}$/)
    const live = await fetchLive(deployment.url)
    expect(live).toMatchObject({ status: 200, body: 'clinic v1 plain' })
    const instances = await api('GET', `/deployments/${deployment.id}/instances`)
    expect(instances).toMatchObject({ desired: 1, active_version_id: v1.id })
    expect(instances.data).toHaveLength(1)
    expect(instances.data[0]).toMatchObject({ state: 'healthy', version_id: v1.id, version_number: 1 })
    expect(instances.events.map((e: any) => e.type)).toEqual(expect.arrayContaining(['started', 'healthy']))
    const logs = await t.call('GET', `/api/v1/deployments/${deployment.id}/logs`, { key })
    expect(logs.status).toBe(200)
    const lines = logs.text.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines).toContainEqual(expect.objectContaining({ instance_id: instances.data[0].id, stream: 'stdout', line: 'listening on 8080' }))
    // Followed (server-sent events): the earlier lines first, then the stream stays open until the client leaves.
    const controller = new AbortController()
    const followed = await fetch(`${t.apiUrl}/api/v1/deployments/${deployment.id}/logs?follow=true&tail=10`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal })
    expect(followed.headers.get('content-type')).toContain('text/event-stream')
    const reader = followed.body!.getReader()
    let text = ''
    while (!text.includes('listening on 8080')) text += new TextDecoder().decode((await reader.read()).value)
    expect(text).toMatch(/event: log\ndata: \{"instance_id":"inst_[a-z0-9]+","stream":"stdout","timestamp":"[^"]+Z","line":"listening on 8080"\}/)
    controller.abort()
    // The image is also kept as an OCI archive in the blob store (exported once the version is live).
    await t.platform.services.publish.archived()
    const release = await t.platform.store.releases.get(v1.release_sha256)
    expect(release?.archive_sha256).toMatch(/^[0-9a-f]{64}$/)
    expect((await t.platform.blobs.stat(release!.archive_sha256!))?.size).toBeGreaterThan(1_000_000)
  }, 600_000)

  it('runs the Procfile release command before go-live; a failing one fails the version while the old one serves', async () => {
    await write('/workspace/Procfile', 'web: node server.js\nrelease: echo running migrations && touch /tmp/never-seen-by-instances\n')
    const v2 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(v2, JSON.stringify(v2)).toMatchObject({ version_number: 2, status: 'ready' })
    const logs = (await t.call('GET', `/api/v1/versions/${v2.id}/logs`, { key })).text
    const released = logs.indexOf('release: running migrations')
    expect(released, logs).toBeGreaterThan(0)
    expect(released).toBeLessThan(logs.indexOf('is live'))
    expect((await fetchLive(deployment.url)).body).toBe('clinic v2 plain')

    await write('/workspace/Procfile', 'web: node server.js\nrelease: echo migration failed >&2; exit 3\n')
    const running = load(deployment.url)
    const v3 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    const during = await running.stop()
    expect(v3).toMatchObject({ version_number: 3, status: 'failed', error: 'the release command exited with 3' })
    expect(during.failures).toEqual([])
    expect([...during.bodies.keys()]).toEqual(['v2'])
    expect((await t.call('GET', `/api/v1/versions/${v3.id}/logs`, { key })).text).toContain('release: migration failed')
    const current = await api('GET', `/deployments/${deployment.id}`)
    expect(current.active_version_id).toBe(v2.id)
    await write('/workspace/Procfile', 'web: node server.js\n')
  }, 600_000)

  it('fails a version that never gets healthy after the deploy timeout; the previous one serves throughout', async () => {
    await api('PATCH', `/deployments/${deployment.id}`, { deploy_timeout_seconds: 6 })
    await write('/workspace/server.js', EXPRESS_APP['server.js']!.replace("app.get('/healthz', (req, res) => res.send('ok'))", "app.get('/healthz', (req, res) => res.status(500).send('not yet'))"))
    const running = load(deployment.url)
    const started = Date.now()
    const v4 = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    const during = await running.stop()
    expect(v4, JSON.stringify(v4)).toMatchObject({ version_number: 4, status: 'failed' })
    expect(v4.error).toContain('not healthy within the deploy timeout of 6 s')
    expect(Date.now() - started).toBeGreaterThanOrEqual(6000)
    expect(during.failures).toEqual([])
    expect(during.sent).toBeGreaterThan(20)
    expect([...during.bodies.keys()]).toEqual(['v2'])
    // Its instances are gone; only version 2's serves.
    const instances = await api('GET', `/deployments/${deployment.id}/instances`)
    expect(instances.data.map((i: any) => i.version_number)).toEqual([2])
    expect(instances.events.map((e: any) => e.type)).toContain('rollout_failed')
    await write('/workspace/server.js', EXPRESS_APP['server.js']!)
    await api('PATCH', `/deployments/${deployment.id}`, { deploy_timeout_seconds: 60 })
  }, 600_000)

  it('rolls back under load with zero failed requests, starting the old version without a rebuild', async () => {
    const running = load(deployment.url)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const result = await api('POST', `/deployments/${deployment.id}/rollback`, { version_number: 1 })
    expect(result.deployment.active_version_id).toBe(v1.id)
    // The very next request is served by version 1.
    expect((await fetchLive(deployment.url)).body).toBe('clinic v1 plain')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.bodies.get('v2')).toBeGreaterThan(0)
    expect(during.bodies.get('v1')).toBeGreaterThan(0)
    // Version 2's instance drained and stopped.
    await expect.poll(async () => (await api('GET', `/deployments/${deployment.id}/instances`)).data.map((i: any) => i.version_number), { timeout: 20_000 }).toEqual([1])
  }, 300_000)

  it('scales to 3 and back to 1 under load with zero failed requests, spreading requests over the instances', async () => {
    const running = load(deployment.url)
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 3 })
    await expect
      .poll(async () => (await api('GET', `/deployments/${deployment.id}/instances`)).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 250 })
      .toBe(3)
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 1 })
    await expect.poll(async () => (await instanceContainers(deployment.id)).length, { timeout: 30_000, interval: 250 }).toBe(1)
    const during = await running.stop()
    expect(during.failures).toEqual([])
    expect(during.sent).toBeGreaterThan(50)
  }, 300_000)

  it("the edge's targets follow the instances at once, not after their cache's TTL: a healthy one is served, a draining one no longer", async () => {
    const targets = t.platform.services.instanceTargets
    const healthy = async () => (await api('GET', `/deployments/${deployment.id}/instances`)).data.filter((i: any) => i.state === 'healthy').length
    const app = { deploymentId: deployment.id, environment: 'production', versionId: (await api('GET', `/deployments/${deployment.id}/instances`)).active_version_id }
    // Read now: without the events, this answer would stand for the TTL (a second).
    expect(await targets.appTargets(app)).toHaveLength(1)
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 2 })
    await expect.poll(healthy, { timeout: 60_000, interval: 50 }).toBe(2)
    expect(await targets.appTargets(app)).toHaveLength(2)
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 1 })
    await expect.poll(healthy, { timeout: 30_000, interval: 50 }).toBe(1)
    expect(await targets.appTargets(app)).toHaveLength(1)
  }, 300_000)

  it('replaces a killed instance within the check interval plus grace while the others keep serving', async () => {
    await api('PATCH', `/deployments/${deployment.id}`, { instances: 2 })
    await expect
      .poll(async () => (await api('GET', `/deployments/${deployment.id}/instances`)).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 250 })
      .toBe(2)
    const [victim] = await instanceContainers(deployment.id)
    const victimInstance = victim!.Labels['miosa.instance_id']
    const running = load(deployment.url)
    const killed = Date.now()
    await docker.getContainer(victim!.Id).kill()
    await expect
      .poll(
        async () => {
          const list = (await api('GET', `/deployments/${deployment.id}/instances`)).data
          return list.filter((i: any) => i.state === 'healthy' && i.id !== victimInstance).length
        },
        { timeout: 30_000, interval: 200 },
      )
      .toBe(2)
    const replacedMs = Date.now() - killed
    const during = await running.stop()
    // Interval (0.5 s) plus grace (10 s), with room for the reconciler's pass.
    expect(replacedMs).toBeLessThan(11_000)
    expect(during.failures).toEqual([])
    const events = (await api('GET', `/deployments/${deployment.id}/instances?events=50`)).events
    expect(events).toContainEqual(expect.objectContaining({ type: 'exited', instance_id: victimInstance }))
  }, 300_000)

  it('re-adopts running instances after a server restart: the same containers, none restarted or duplicated', async () => {
    const before = (await instanceContainers(deployment.id)).map((c) => c.Id).toSorted()
    expect(before).toHaveLength(2)
    const dataDir = t.dataDir
    await t.close({ keep: true })
    t = await startTestPlatform({ dataDir, instanceReconcileIntervalMs: 250 })
      const current = await api('GET', `/deployments/${deployment.id}`)
    await expect.poll(async () => (await fetchLive(current.url)).body, { timeout: 15_000, interval: 200 }).toBe('clinic v1 plain')
    // A few passes of the reconciler later, still exactly the same two containers.
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const after = await instanceContainers(deployment.id)
    expect(after.map((c) => c.Id).toSorted()).toEqual(before)
    expect(after.every((c) => c.State === 'running')).toBe(true)
    const instances = await api('GET', `/deployments/${deployment.id}/instances?events=50`)
    expect(instances.data.filter((i: any) => i.state === 'healthy')).toHaveLength(2)
    expect(instances.events.filter((e: any) => e.type === 'adopted')).toHaveLength(2)
  }, 300_000)

  it('backs off a crash-looping instance exponentially and says why: exit code and last lines', async () => {
    await write(
      '/workspace/crash.js',
      [
        "const http = require('node:http')",
        "http.createServer((req, res) => res.end('up for now')).listen(Number(process.env.PORT))",
        "console.log('started; the database is unreachable')",
        "setTimeout(() => { console.error('fatal: lost the database'); process.exit(3) }, 1500)",
        '',
      ].join('\n'),
    )
    await write('/workspace/Procfile', 'web: node crash.js\n')
    const crashy = await api('POST', '/deployments', { name: 'crashy', health_check: { interval_seconds: 0.25, grace_seconds: 10 } })
    const v = await api('POST', `/deployments/${crashy.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(v, JSON.stringify(v)).toMatchObject({ status: 'ready' })
    await expect
      .poll(async () => (await api('GET', `/deployments/${crashy.id}/instances`)).crash_loop?.failures ?? 0, { timeout: 30_000, interval: 250 })
      .toBeGreaterThanOrEqual(3)
    const { crash_loop: loop, events } = await api('GET', `/deployments/${crashy.id}/instances?events=100`)
    expect(loop.last_exit_code).toBe(3)
    expect(loop.last_logs).toContain('fatal: lost the database')
    const backoffs = events.filter((e: any) => e.type === 'backoff').toReversed()
    const waits = backoffs.map((e: any) => Number(/next start in (\d+) s/.exec(e.message)?.[1]))
    expect(waits.length).toBeGreaterThanOrEqual(2)
    // Each wait at least as long as the one before, and longer overall: exponential, not a hot loop.
    for (let i = 1; i < waits.length; i++) expect(waits[i]).toBeGreaterThanOrEqual(waits[i - 1])
    expect(waits.at(-1)).toBeGreaterThan(waits[0])
    expect(events.filter((e: any) => e.type === 'exited')[0].details).toMatchObject({ exit_code: 3 })
    await write('/workspace/Procfile', 'web: node server.js\n')
  }, 120_000)
})
