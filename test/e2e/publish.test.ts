import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callApi, emptyWorkspace, getViaEdge, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Publishing from a real sandbox on the real Docker Engine: a Vite React app is built in a
// builder container and served by the edge (checked in Chromium); versions number up,
// rollback and promote re-point the live URL at once, a failed build changes nothing live,
// concurrent publishes get distinct numbers, and a version holds its source as it was.

let t: TestPlatform
let key: string
let sandbox: any

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)
const write = (path: string, content: string) => writeWorkspace(t, key, sandbox.id, { [path.replace(/^\/workspace\//, '')]: content })
const fetchLive = (url: string, path = '/') => getViaEdge(t, url, { path })

const REACT_APP: Record<string, string> = {
  'package.json': JSON.stringify({
    name: 'smile-dental',
    private: true,
    type: 'module',
    scripts: { build: 'vite build' },
    dependencies: { react: '^19.0.0', 'react-dom': '^19.0.0' },
    devDependencies: { vite: '^6.0.0', '@vitejs/plugin-react': '^4.3.0' },
  }),
  'vite.config.js': "import react from '@vitejs/plugin-react'\nexport default { plugins: [react()] }\n",
  'index.html': '<!doctype html><html><head><title>Smile Dental</title></head><body><div id="root"></div><script type="module" src="/src/main.jsx"></script></body></html>\n',
  'src/main.jsx':
    "import { createRoot } from 'react-dom/client'\nimport App from './App.jsx'\ncreateRoot(document.getElementById('root')).render(<App />)\n",
  'src/App.jsx': "export default function App() { return <h1 id=\"title\">Smile Dental v1</h1> }\n",
}

beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Publish Org')).key
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'smile-dental-dev', timeout: '1h' })
  await emptyWorkspace(t, key, sandbox.id)
  for (const [path, content] of Object.entries(REACT_APP)) await write(`/workspace/${path}`, content)
}, 120_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

describe.sequential('publish, versions, rollback and promote', () => {
  let deployment: any
  let v1: any
  let v2: any

  it('builds a Vite React app from the sandbox in a builder and serves it at the managed URL (Chromium)', async () => {
    v1 = await api('POST', '/publish?wait=true', { name: 'smile-dental', sandbox_id: sandbox.id, kind: 'auto' })
    expect(v1, JSON.stringify(v1)).toMatchObject({ version_number: 1, status: 'ready' })
    expect(v1.plan).toMatchObject({ kind: 'static', detected: 'node', output_dir: 'dist' })
    deployment = await api('GET', `/deployments/${v1.deployment_id}`)
    expect(deployment.url).toMatch(/^http:\/\/smile-dental\.[a-z0-9-]+\.localhost:\d+$/)
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    try {
      const page = await browser.newPage()
      const res = await page.goto(deployment.url)
      expect(res?.status()).toBe(200)
      await expect.poll(() => page.textContent('#title')).toBe('Smile Dental v1')
    } finally {
      await browser.close()
    }
  }, 300_000)

  it('holds the source as it was at publish time while the sandbox keeps changing', async () => {
    await write('/workspace/src/App.jsx', 'export default function App() { return <h1 id="title">Smile Dental v2</h1> }\n')
    const started = await api('POST', `/deployments/${deployment.id}/publish`, { sandbox_id: sandbox.id })
    expect(started).toMatchObject({ version_number: 2, status: 'building' })
    expect(started.source_sha256).not.toBe(v1.source_sha256)
    // The sandbox changes while the build runs: the version keeps what publish captured.
    await write('/workspace/src/App.jsx', 'export default function App() { return <h1 id="title">changed after v2</h1> }\n')
    await expect.poll(async () => (await api('GET', `/versions/${started.id}`)).status, { timeout: 240_000, interval: 500 }).toBe('ready')
    v2 = await api('GET', `/versions/${started.id}`)
    expect(v2.source_sha256).toBe(started.source_sha256)
    const live = await fetchLive(deployment.url)
    expect(live.status).toBe(200)
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(live.body)?.[1] as string
    const js = await fetchLive(deployment.url, asset)
    expect(js.body).toContain('Smile Dental v2')
    expect(js.body).not.toContain('changed after v2')
  }, 300_000)

  it('rolls back to version 1 on the very next request, and promotes version 2 again', async () => {
    const before = (await fetchLive(deployment.url)).body
    const started = Date.now()
    await api('POST', `/deployments/${deployment.id}/rollback`, { version_number: 1 })
    const answeredMs = Date.now() - started
    expect(answeredMs).toBeLessThan(5000)
    const after = (await fetchLive(deployment.url)).body
    expect(after).not.toBe(before)
    await api('POST', `/deployments/${deployment.id}/promote`, { version_number: 2, environment: 'production' })
    expect((await fetchLive(deployment.url)).body).toBe(before)
    const history = await api('GET', `/deployments/${deployment.id}/route-history`)
    expect(history.data.map((c: any) => c.reason)).toEqual(['promote', 'rollback', 'publish', 'publish'])
  })

  it('keeps version 2 live when a build fails, and keeps the failed version and its logs', async () => {
    await write('/workspace/src/App.jsx', 'export default function App() { return <h1>oops</h1>\n') // a syntax error
    const failed = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
    expect(failed).toMatchObject({ version_number: 3, status: 'failed' })
    expect(failed.error).toMatch(/build/)
    const logs = await t.call('GET', `/api/v1/versions/${failed.id}/logs`, { key })
    expect(logs.text).toMatch(/npm run build|vite build/)
    expect(logs.text).toMatch(/error/i)
    const live = await api('GET', `/deployments/${deployment.id}`)
    expect(live.active_version_id ?? live.environments?.production?.active_version_id).toBe(v2.id)
    expect((await fetchLive(deployment.url)).status).toBe(200)
  }, 300_000)

  it('gives concurrent publishes distinct consecutive numbers', async () => {
    await write('/workspace/src/App.jsx', 'export default function App() { return <h1 id="title">Smile Dental v4</h1> }\n')
    const site = await api('POST', '/publish', { name: 'static-pair', sandbox_id: sandbox.id, kind: 'auto' })
    const both = await Promise.all([
      api('POST', `/deployments/${site.deployment_id}/publish`, { sandbox_id: sandbox.id }),
      api('POST', `/deployments/${site.deployment_id}/publish`, { sandbox_id: sandbox.id }),
    ])
    expect(both.map((v) => v.version_number).sort()).toEqual([2, 3])
  }, 120_000)
})
