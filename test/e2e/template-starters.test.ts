import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliAs } from '../helpers/cli.js'
import { getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Every template's starter app, published unchanged from a new sandbox with the real
// `miosa` bin, on the real Docker Engine, and served through the edge. Then an app that
// ignores PORT and listens on a fixed port: the platform finds that port, says so in the
// deploy output, and routes there (also for instances the reconciler starts on a scale).
// nextjs passes on its own start script's fixed port 3000 through that discovery until its
// start script honours $PORT (then directly).

let t: TestPlatform
let tmp: string
let key: string
const { miosa, json } = cliAs(() => ({ apiUrl: t.apiUrl, key: key, home: tmp }))

/** `miosa deploy` as a person runs it (progress on stderr); answers that output and the deployment's URL. */
async function deploy(sandboxId: string, name: string): Promise<{ output: string; url: string }> {
  const result = await miosa(['deploy', '--sandbox', sandboxId, '--name', name])
  const output = `${result.stdout}\n${result.stderr}`
  expect(result.code, output).toBe(0)
  const deployment = await json(['deployments', 'get', name])
  return { output, url: deployment.url }
}

beforeAll(async () => {
  t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  key = (await t.newOrganization('Starters Org')).key
  tmp = await mkdtemp(join(tmpdir(), 'miosa-cli-starters-'))
}, 60_000)

afterAll(async () => {
  await t?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
}, 120_000)

const STARTERS = [
  { template: 'miosa-sandbox', kind: 'static', body: 'Hello from miosa', timeout: 300_000 },
  { template: 'static', kind: 'static', body: 'Hello from your miosa sandbox', timeout: 300_000 },
  { template: 'node', kind: 'dynamic', body: 'Hello from miosa (node)', timeout: 400_000 },
  { template: 'python', kind: 'dynamic', body: 'Hello from miosa (python)', timeout: 400_000 },
  { template: 'nextjs', kind: 'dynamic', body: 'Hello from your miosa sandbox', timeout: 900_000 },
] as const

describe.sequential('every template’s starter app publishes as it is', () => {
  for (const starter of STARTERS) {
    it(`${starter.template}: a new sandbox, deployed unchanged, is served at its URL`, async () => {
      const sandbox = await json(['sandbox', 'create', '--template', starter.template, '--name', `${starter.template}-starter`, '--timeout', '1h', '--wait'])
      const { output, url } = await deploy(sandbox.id, `${starter.template}-starter`)
      const version = (await json(['versions', 'list', `${starter.template}-starter`])).data[0]
      expect(version, output).toMatchObject({ status: 'ready', release_kind: starter.kind })
      await expect.poll(async () => (await getViaEdge(t, url)).status, { timeout: 30_000, interval: 500 }).toBe(200)
      expect((await getViaEdge(t, url)).body).toContain(starter.body)
    }, starter.timeout)
  }
})

describe('an app listening on a fixed port other than $PORT', () => {
  it('is found where it listens, said so in the deploy output, and served there; so are the instances a scale adds', async () => {
    const sandbox = await json(['sandbox', 'create', '--template', 'node', '--name', 'fixed-port', '--timeout', '1h', '--wait'])
    await writeWorkspace(t, key, sandbox.id, {
      'server.js': "require('node:http').createServer((req, res) => res.end('listening on 3000 whatever PORT says')).listen(3000)\n",
    })
    const { output, url } = await deploy(sandbox.id, 'fixed-port')
    expect(output).toContain('the app listens on 3000, not $PORT=8080: routing to 3000')
    const served = await getViaEdge(t, url)
    expect(served).toMatchObject({ status: 200, body: 'listening on 3000 whatever PORT says' })

    // The reconciler starts the second instance: it is found on 3000 too, and becomes healthy.
    await json(['scale', 'fixed-port', '--instances', '2'])
    await expect
      .poll(async () => (await json(['instances', 'list', 'fixed-port'])).data.filter((i: any) => i.state === 'healthy').length, { timeout: 60_000, interval: 500 })
      .toBe(2)
    for (let i = 0; i < 4; i++) expect(await getViaEdge(t, url)).toMatchObject({ status: 200, body: 'listening on 3000 whatever PORT says' })
  }, 400_000)
})
