import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Background services against a real Docker Engine, through the real CLI and the edge: a
// dev server started with `miosa sandbox exec --background` comes back when its stopped
// sandbox is woken by a request to its preview. While the server is still starting, a
// browser sees the tenant's "starting" page, which reloads itself; other clients a 503.

let t: TestPlatform
let key: string
let edgePort: number

interface EdgeResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

function edge(host: string, accept = 'text/html'): Promise<EdgeResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: edgePort, path: '/', headers: { host: `${host}:${edgePort}`, accept } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const res = await t.call(method, `/api/v1${path}`, { key, body })
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
  return res.json
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** The CLI with --json (before a `--`, after which everything is the command). */
function cli(args: string[]) {
  const end = args.includes('--') ? args.indexOf('--') : args.length
  return runCli([...args.slice(0, end), '--json', ...args.slice(end)], { env: { MIOSA_API_URL: t.apiUrl, MIOSA_API_KEY: key } })
}

/** Requests the preview as a browser would, following the starting page's reloads, until the app answers. */
async function browse(host: string, withinMs: number): Promise<{ pages: EdgeResponse[]; answer: EdgeResponse }> {
  const pages: EdgeResponse[] = []
  const deadline = Date.now() + withinMs
  for (;;) {
    const res = await edge(host)
    if (res.status === 200) return { pages, answer: res }
    pages.push(res)
    if (Date.now() > deadline) throw new Error(`the preview did not answer within ${withinMs} ms; last: ${res.status} ${res.body.slice(0, 300)}`)
    // The page's own meta refresh says how long a browser waits; a quicker loop here changes nothing but speed.
    await sleep(250)
  }
}

// The app takes a moment to listen (like a dev server compiling), so a woken sandbox shows the starting page first.
const SERVER = `setTimeout(() => require('http').createServer((q, s) => s.end('app says hi ' + process.env.GREETING)).listen(3000), 1500)`

beforeAll(async () => {
  // With a warm pool: the sandbox comes from it, and services work the same there.
  t = await startTestPlatform({ sandboxReaperIntervalMs: 250, sandboxWarmPool: 1 })
  edgePort = Number(new URL(t.edgeUrl).port)
  key = (await t.newOrganization('Services Org')).key
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

describe.sequential('background services', () => {
  let sandbox: any
  let serviceId: string
  const host = () => `3000-${sandbox.slug}.sandbox.localhost`

  it('exec --background starts a server as a service, which the sandbox lists', async () => {
    sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'dev-server', env: { GREETING: 'from the sandbox env' } })
    await api('PATCH', `/sandboxes/${sandbox.id}`, { preview_public: true })
    await api('PUT', '/tenant/branding', { workspace_id: sandbox.workspace_id, logo_url: 'https://cdn.clinic.example/logo.png', accent_color: '#ff6600' })
    const write = await t.call('PUT', `/api/v1/sandboxes/${sandbox.id}/files?path=/workspace/server.js`, {
      key,
      rawBody: SERVER,
      headers: { 'content-type': 'application/octet-stream' },
    })
    expect(write.status, write.text).toBe(200)

    const started = await cli(['sandbox', 'exec', sandbox.id, '--background', '--', 'node', 'server.js'])
    expect(started.code, started.stderr).toBe(0)
    const service = JSON.parse(started.stdout)
    expect(service.id).toMatch(/^proc_/)
    expect(service.cmd).toEqual(['node', 'server.js'])
    serviceId = service.id

    const { answer } = await browse(host(), 20_000)
    expect(answer.body).toBe('app says hi from the sandbox env')

    const listed = await cli(['sandbox', 'services', 'list', sandbox.id])
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).map((s: { id: string }) => s.id)).toEqual([serviceId])
    const logs = await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: ['cat', service.log_path] })
    expect(logs.exit_code).toBe(0)
  }, 90_000)

  it('a stopped sandbox wakes on its preview: a branded starting page that reloads, then the app itself', async () => {
    expect((await api('POST', `/sandboxes/${sandbox.id}/stop`)).state).toBe('paused')
    const { pages, answer } = await browse(host(), 30_000)
    expect(answer.body).toBe('app says hi from the sandbox env')
    expect((await api('GET', `/sandboxes/${sandbox.id}`)).state).toBe('running')
    // The server listens 1.5 s after it starts: the first answers were the starting page, not a 502.
    expect(pages.length).toBeGreaterThan(0)
    for (const page of pages) expect(page.status).toBe(503)
    const first = pages[0] as EdgeResponse
    expect(first.headers['retry-after']).toBe('2')
    expect(first.body).toContain('<meta http-equiv="refresh" content="2">')
    expect(first.body).toContain('#ff6600')
    expect(first.body).toContain('https://cdn.clinic.example/logo.png')
    expect(first.body.toLowerCase()).not.toContain('miosa')
  }, 90_000)

  it('a request that is not a page navigation gets a 503 with Retry-After while the server starts', async () => {
    await api('POST', `/sandboxes/${sandbox.id}/stop`)
    const res = await edge(host(), 'application/json')
    expect(res.status).toBe(503)
    expect(res.headers['retry-after']).toBe('2')
    expect(JSON.parse(res.body).error.code).toBe('unavailable')
    expect((await browse(host(), 30_000)).answer.body).toBe('app says hi from the sandbox env')
  }, 90_000)

  it('the server also comes back after the idle reaper stopped the sandbox', async () => {
    await api('PATCH', `/sandboxes/${sandbox.id}`, { timeout: 10 })
    const deadline = Date.now() + 30_000
    while ((await api('GET', `/sandboxes/${sandbox.id}`)).state !== 'paused') {
      if (Date.now() > deadline) throw new Error('the idle reaper did not stop the sandbox')
      await sleep(250)
    }
    expect((await browse(host(), 30_000)).answer.body).toBe('app says hi from the sandbox env')
    await api('PATCH', `/sandboxes/${sandbox.id}`, { timeout: 600 })
  }, 90_000)

  it('a removed service is ended and not started again on resume', async () => {
    const removed = await cli(['sandbox', 'services', 'remove', sandbox.id, serviceId])
    expect(removed.code, removed.stderr).toBe(0)
    expect(await api('GET', `/sandboxes/${sandbox.id}/services`)).toEqual({ data: [] })
    const listening = `for i in $(seq 20); do node -e "require('net').connect(3000).on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))" || exit 0; sleep 0.1; done; exit 1`
    expect((await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: listening })).exit_code).toBe(0)
    await api('POST', `/sandboxes/${sandbox.id}/stop`)
    await api('POST', `/sandboxes/${sandbox.id}/resume`)
    await sleep(2_500)
    const res = await edge(host())
    // Woken just now, nothing will answer: the starting page, never the app.
    expect(res.status).toBe(503)
    expect(res.body).not.toContain('app says hi')
  }, 90_000)

  it('refuses bad input with a 4xx naming the problem, and another organization sees nothing', async () => {
    const bad = await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/services`, { key, body: { cmd: [] } })
    expect(bad.status).toBe(400)
    const missing = await t.call('POST', `/api/v1/sandboxes/${sandbox.id}/services`, { key, body: { cmd: ['no-such-command-here'] } })
    expect(missing.status).toBe(400)
    expect(missing.json.error.message).toContain('command not found')
    expect((await api('GET', `/sandboxes/${sandbox.id}/services`)).data).toEqual([])
    const other = (await t.newOrganization('Other Org')).key
    expect((await t.call('GET', `/api/v1/sandboxes/${sandbox.id}/services`, { key: other })).status).toBe(404)
    expect((await t.call('DELETE', `/api/v1/sandboxes/${sandbox.id}/services/proc_aaaaaaaaaaaaaaaaaaaa`, { key })).status).toBe(404)
  }, 60_000)
})
