import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Docker from 'dockerode'
import { afterAll, expect, it } from 'vitest'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { startServerProcess } from '../helpers/server-process.js'
import type { ServerProcess } from '../helpers/server-process.js'

// The server is killed (SIGKILL, no goodbye) in the middle of a build. After a restart the
// interrupted version is failed with a reason, not stuck in `building`, its builder
// container is gone, and the version that was live keeps serving.

const docker = new Docker()
let server: ServerProcess | undefined
let dataDir: string
let platformId: string | undefined

afterAll(async () => {
  await server?.stop()
  if (platformId !== undefined) {
    await removePlatformResources(platformId, testDockerDriver(platformId, docker))
  }
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
}, 120_000)

function client(s: ServerProcess, key: string) {
  return async (method: string, path: string, body?: unknown, raw?: { body: string; type: string }): Promise<any> => {
    const res = await fetch(`${s.apiUrl}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined && raw === undefined ? {} : { 'content-type': raw?.type ?? 'application/json' }),
      },
      ...(raw !== undefined ? { body: raw.body } : body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    return JSON.parse(text)
  }
}

function fetchLive(s: ServerProcess, url: string): Promise<{ status: number; body: string }> {
  const edgePort = Number(new URL(s.edgeUrl).port)
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: edgePort, path: '/', headers: { host: new URL(url).host } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

it('fails a build interrupted by a crash, removes its builder, and keeps the live version serving', async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'miosa-publish-restart-'))
  const env = { MIOSA_DATA_DIR: dataDir, MIOSA_SANDBOX_WARM_POOL: '0' }
  server = await startServerProcess([], env)
  const root = client(server, server.started.root_key as string)
  const org = await root('POST', '/organizations', { name: 'Crash Org' })
  const key = (await root('POST', `/organizations/${org.id}/api-keys`, { name: 'test' })).key as string
  let api = client(server, key)

  const sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'crash-site', timeout: '1h' })
  platformId = (await docker.getContainer(`miosa-${sandbox.id}`).inspect()).Config.Labels['miosa.platform']
  const write = (path: string, content: string) =>
    api('PUT', `/sandboxes/${sandbox.id}/files?path=${encodeURIComponent(path)}`, undefined, { body: content, type: 'application/octet-stream' })
  // A static site in place of the template's starter app.
  await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: 'find /workspace -mindepth 1 -delete' })
  await write('/workspace/index.html', '<h1>live version one</h1>\n')
  const v1 = await api('POST', '/publish?wait=true', { name: 'crash-site', sandbox_id: sandbox.id, kind: 'auto' })
  expect(v1.status).toBe('ready')
  const url = (await api('GET', `/deployments/${v1.deployment_id}`)).url as string
  expect((await fetchLive(server, url)).body).toContain('live version one')

  // A build that takes long enough to be killed in the middle of.
  await write('/workspace/package.json', JSON.stringify({ scripts: { build: 'sleep 60 && mkdir -p dist && echo two > dist/index.html' } }))
  const v2 = await api('POST', `/deployments/${v1.deployment_id}/publish`, { sandbox_id: sandbox.id, settings: { output_dir: 'dist' } })
  expect(v2.status).toBe('building')
  const builderRunning = async () => (await docker.listContainers({ filters: { label: [`miosa.platform=${platformId}`, 'miosa.kind=builder'] } })).length
  await expect.poll(builderRunning, { timeout: 60_000, interval: 500 }).toBe(1)
  await server.stop('SIGKILL')

  server = await startServerProcess([], env)
  api = client(server, key)
  const after = await api('GET', `/versions/${v2.id}`)
  expect(after.status).toBe('failed')
  expect(after.error).toMatch(/restart|interrupted/i)
  await expect.poll(builderRunning, { timeout: 30_000, interval: 500 }).toBe(0)
  const live = await fetchLive(server, (await api('GET', `/deployments/${v1.deployment_id}`)).url as string)
  expect(live.status).toBe(200)
  expect(live.body).toContain('live version one')
}, 240_000)
