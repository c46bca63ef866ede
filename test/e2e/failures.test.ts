import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { callApi, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Failures that explain themselves, with the real `miosa` bin against a real platform on
// the real Docker Engine: a build whose `npm run build` prints lines and exits 1 (inside the
// image build's RUN step), and an app that prints and never listens on its port. Each
// failed version carries the last lines of that output (secrets masked) and the command for
// the whole log, in the API, in `deploy --json` and in what a person sees; the app's output
// stays readable through `miosa logs <deployment>` once its instances are gone.

const BUILD_TOKEN = 'tok-build-9f8e7d6c5b4a'
const DB_PASSWORD = 'pw-runtime-1a2b3c4d5e6f'

let t: TestPlatform
let tmp: string
let key: string
let sandbox: any
const { miosa } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Failures Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-failures-'))
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'failures-dev', timeout: '1h' })
}, 300_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

describe.sequential('failures explain themselves', () => {
  it('a failing `npm run build` in an image build: the last 50 lines of its own output, masked, in the API and the CLI', async () => {
    await writeWorkspace(t, key, sandbox.id, {
      'package.json': JSON.stringify({ name: 'clinic-site', private: true, scripts: { build: 'node build.js', start: 'node server.js' } }),
      // Docker interleaves a step's stdout and stderr as they come: the error follows a pause.
      'build.js': [
        'for (let i = 1; i <= 60; i++) console.log(`compiling page ${i} of 60`)',
        'setTimeout(() => {',
        '  console.error(`using registry token ${process.env.NPM_TOKEN}`)',
        "  console.error(\"Error: Cannot find module './pages/missing-page'\")",
        '  process.exitCode = 1',
        '}, 300)',
        '',
      ].join('\n'),
      'server.js': "require('node:http').createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT))\n",
    })
    const deployment = await api('POST', '/deployments', { name: 'failing-build' })
    await api('POST', `/deployments/${deployment.id}/env`, { key: 'NPM_TOKEN', value: BUILD_TOKEN, is_secret: true, phase: 'build' })

    const result = await miosa(['deploy', '--sandbox', sandbox.id, '--name', 'failing-build', '--json'])
    expect(result.code, result.stderr).toBe(1)
    const version = JSON.parse(result.stdout)
    expect(version).toMatchObject({ status: 'failed', release_kind: null, plan: { kind: 'dynamic' } })
    const details = version.error_details
    expect(details).toMatchObject({ source: 'build', port: null, logs_command: `miosa logs ${version.id}` })
    expect(details.output.length).toBeLessThanOrEqual(50)
    // The failing RUN step's own words, not just the wrapper command line.
    expect(details.output).toContain("Error: Cannot find module './pages/missing-page'")
    expect(details.output).toContain('compiling page 60 of 60')
    expect(details.output).not.toContain('compiling page 1 of 60')
    expect(details.output).toContain('using registry token ••••')
    expect(JSON.stringify(version)).not.toContain(BUILD_TOKEN)
    // The API answers the same.
    expect((await api('GET', `/versions/${version.id}`)).error_details).toEqual(details)

    // What a person sees: the error, the lines, and where the whole log is.
    const human = await miosa(['deploy', '--sandbox', sandbox.id, '--name', 'failing-build'])
    expect(human.code).toBe(1)
    expect(human.stdout).toMatch(/^version 2 failed: the build failed/)
    expect(human.stdout).toMatch(/last \d+ lines the build printed:\n/)
    expect(human.stdout).toContain("  Error: Cannot find module './pages/missing-page'")
    expect(human.stdout).toMatch(/the whole log: miosa logs ver_\w+\n$/)
    expect(human.stdout + human.stderr).not.toContain(BUILD_TOKEN)
    const whole = await miosa(['logs', version.id])
    expect(whole.code).toBe(0)
    expect(whole.stdout).toContain('compiling page 1 of 60')
  }, 600_000)

  it('an app that never becomes healthy: its last lines and the port it was expected on, readable after its instances are gone', async () => {
    await writeWorkspace(t, key, sandbox.id, {
      'package.json': JSON.stringify({ name: 'clinic-api', private: true, scripts: { start: 'node server.js' } }),
      // Never listens: it waits for a database that is not there, and says so.
      'server.js': [
        "console.log('clinic api starting')",
        'console.error(`connecting to postgres://app:${process.env.DB_PASSWORD}@db:5432/clinic`)',
        "setInterval(() => console.log('still waiting for the database'), 1000)",
        '',
      ].join('\n'),
    })
    const deployment = await api('POST', '/deployments', { name: 'never-healthy', deploy_timeout_seconds: 15 })
    await api('POST', `/deployments/${deployment.id}/env`, { key: 'DB_PASSWORD', value: DB_PASSWORD, is_secret: true })

    const result = await miosa(['deploy', '--sandbox', sandbox.id, '--name', 'never-healthy', '--json'])
    expect(result.code, result.stderr).toBe(1)
    const version = JSON.parse(result.stdout)
    expect(version.status).toBe('failed')
    expect(version.error).toContain('not healthy within the deploy timeout of 15 s')
    expect(version.error).toContain('expected to listen on port 8080')
    expect(version.error_details).toMatchObject({ source: 'app', port: 8080, logs_command: `miosa logs ${version.id}` })
    expect(version.error_details.output, (await miosa(['logs', version.id])).stdout).toEqual(expect.arrayContaining(['clinic api starting', 'connecting to postgres://app:••••@db:5432/clinic', 'still waiting for the database']))
    expect(JSON.stringify(version)).not.toContain(DB_PASSWORD)

    // The instances are removed; their output is still the deployment's logs.
    expect((await api('GET', `/deployments/${deployment.id}/instances`)).data).toEqual([])
    const logs = await miosa(['logs', 'never-healthy', '--json'])
    expect(logs.code, logs.stderr).toBe(0)
    const lines = JSON.parse(logs.stdout).lines
    expect(lines).toContainEqual(expect.objectContaining({ stream: 'stdout', line: 'clinic api starting', instance_id: expect.stringMatching(/^inst_/) }))
    expect(lines).toContainEqual(expect.objectContaining({ stream: 'stderr', line: 'connecting to postgres://app:••••@db:5432/clinic' }))
    expect(logs.stdout).not.toContain(DB_PASSWORD)
    const human = await miosa(['logs', 'never-healthy'])
    expect(human.stdout).toMatch(/^\S+Z inst_\S+ out \| clinic api starting$/m)

    const deploy = await miosa(['deploy', '--sandbox', sandbox.id, '--name', 'never-healthy'])
    expect(deploy.code).toBe(1)
    expect(deploy.stdout).toContain('the app printed (expected on port 8080):\n')
    expect(deploy.stdout).toContain('  clinic api starting\n')
    expect(deploy.stdout + deploy.stderr).not.toContain(DB_PASSWORD)
    // The latest failed rollout is what the logs show: version 2's instances now.
    const again = JSON.parse((await miosa(['logs', 'never-healthy', '--json'])).stdout).lines
    expect(new Set(again.map((l: any) => l.instance_id)).size).toBe(1)
    expect(again[0].instance_id).not.toBe(lines[0].instance_id)
  }, 600_000)
})
