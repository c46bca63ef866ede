import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callApi, getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Where a deployment environment's env vars go, on the real Docker Engine: build-time values
// into the build (a secret one masked in the build log), runtime values into instances at
// boot (a change shows after `restart`, not before; a secret printed by the app is masked in
// its runtime logs), and into a sandbox that develops against the environment. No API
// answer of the platform carries a secret's value.

let t: TestPlatform
let key: string
const answers: string[] = []

const API_TOKEN = 'tok_live_9f8e7d6c5b4a3f2e'
const BUILD_SECRET = 'bs_ultra_secret_77a1b2'

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body, answers)

async function appEnv(url: string): Promise<Record<string, string>> {
  const res = await getViaEdge(t, url, { path: '/env' })
  if (res.status !== 200) throw new Error(`${res.status}: ${res.body}`)
  return JSON.parse(res.body) as Record<string, string>
}

const APP: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'env-app', private: true, scripts: { build: 'node build.js', start: 'node server.js' } }),
  'build.js': [
    "const fs = require('node:fs')",
    "fs.writeFileSync('stamp.txt', String(process.env.BUILD_STAMP))",
    'console.log(`building with BUILD_SECRET=${process.env.BUILD_SECRET}`)',
    '',
  ].join('\n'),
  'server.js': [
    "const fs = require('node:fs')",
    "const http = require('node:http')",
    "const stamp = fs.readFileSync('stamp.txt', 'utf8')",
    'console.log(`booting with token ${process.env.API_TOKEN}`)',
    "http.createServer((req, res) => res.end(JSON.stringify({ ...process.env, STAMP: stamp }))).listen(Number(process.env.PORT))",
    '',
  ].join('\n'),
}

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Env Org')).key
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

describe.sequential('env vars and secrets where they are used', () => {
  let deployment: any
  let sandbox: any

  it('builds with the build-time values and boots with the runtime ones; secrets are masked in build and runtime logs', async () => {
    deployment = await api('POST', '/deployments', { name: 'env-app', health_check: { interval_seconds: 0.25 } })
    await api('POST', `/deployments/${deployment.id}/env/bulk`, {
      environment: 'production',
      vars: [
        { key: 'GREETING', value: 'hello production' },
        { key: 'API_TOKEN', value: API_TOKEN, is_secret: true },
        { key: 'BUILD_STAMP', value: 'stamp-42', phase: 'build' },
        { key: 'BUILD_SECRET', value: BUILD_SECRET, is_secret: true, phase: 'build' },
      ],
    })
    await api('POST', `/deployments/${deployment.id}/env`, { environment: 'staging', key: 'GREETING', value: 'hello staging', is_secret: false })

    sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'env-app-dev', timeout: '1h' })
    await writeWorkspace(t, key, sandbox.id, APP)
    const version = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(version, JSON.stringify(version)).toMatchObject({ status: 'ready', release_kind: 'dynamic' })

    const env = await appEnv(deployment.url)
    expect(env).toMatchObject({ GREETING: 'hello production', API_TOKEN, STAMP: 'stamp-42', MIOSA_ENVIRONMENT: 'production' })
    // Build-time only values are not in the running instance.
    expect(env.BUILD_SECRET).toBeUndefined()

    const buildLog = (await t.call('GET', `/api/v1/versions/${version.id}/logs`, { key })).text
    answers.push(buildLog)
    expect(buildLog).toContain('building with BUILD_SECRET=••••')
    expect(buildLog).not.toContain(BUILD_SECRET)

    const runtimeLog = await t.call('GET', `/api/v1/deployments/${deployment.id}/logs`, { key })
    answers.push(runtimeLog.text)
    expect(runtimeLog.text).toContain('booting with token ••••')
  }, 400_000)

  it('applies a changed value at the next boot: after a restart, not before', async () => {
    const changed = await api('POST', `/deployments/${deployment.id}/env`, { environment: 'production', key: 'GREETING', value: 'hello again', is_secret: false })
    expect(changed.restart_required).toBe(true)
    expect((await appEnv(deployment.url)).GREETING).toBe('hello production')
    await api('POST', `/deployments/${deployment.id}/restart`, { environment: 'production' })
    const env = await appEnv(deployment.url)
    expect(env.GREETING).toBe('hello again')
    expect(env.API_TOKEN).toBe(API_TOKEN)
  }, 120_000)

  it('gives a sandbox that develops against staging the staging values', async () => {
    const dev = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'staging-dev', deployment_id: deployment.id, environment: 'staging' })
    expect(dev).toMatchObject({ deployment_id: deployment.id, environment: 'staging' })
    const run = await api('POST', `/sandboxes/${dev.id}/exec`, { cmd: 'echo "$GREETING|${API_TOKEN:-unset}"' })
    expect(run.stdout.trim()).toBe('hello staging|unset')
    // A stop and resume reads them again.
    await api('POST', `/deployments/${deployment.id}/env`, { environment: 'staging', key: 'GREETING', value: 'hello staging 2', is_secret: false })
    await api('POST', `/sandboxes/${dev.id}/stop`)
    await api('POST', `/sandboxes/${dev.id}/resume`)
    expect((await api('POST', `/sandboxes/${dev.id}/exec`, { cmd: 'printenv GREETING' })).stdout.trim()).toBe('hello staging 2')

    const refused = await t.call('POST', '/api/v1/sandboxes', { key, body: { template: 'node', environment: 'staging' } })
    expect(refused.status).toBe(400)
    expect(refused.json.error.message).toContain('deployment_id')
    const unknown = await t.call('POST', '/api/v1/sandboxes', { key, body: { template: 'node', deployment_id: deployment.id, environment: 'qa' } })
    expect(unknown.status).toBeGreaterThanOrEqual(400)
    expect(unknown.status).toBeLessThan(500)
  }, 120_000)

  it('never answers a secret value: every answer of the platform above is free of them', async () => {
    const listed = await api('GET', `/deployments/${deployment.id}/env?environment=production`)
    expect(listed.data.find((v: any) => v.key === 'API_TOKEN').preview).toBe('••••')
    for (const text of answers) {
      expect(text).not.toContain(API_TOKEN)
      expect(text).not.toContain(BUILD_SECRET)
    }
  })
})
