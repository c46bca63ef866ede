import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// A real browser (Debian's Chromium) opens a preview-token URL of a Vite dev server in a
// real sandbox, through the edge: the token becomes a cookie that survives a reload, an
// edit in the sandbox reaches the page through Vite's WebSocket over the edge, and once
// the token expires the page answers 401.

let t: TestPlatform
let key: string
let browser: Browser

beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Browser Org')).key
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Playwright gives the browser a fresh profile of its own; the rest keeps Chromium off a network it cannot reach.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await t?.close()
}, 120_000)

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const res = await t.call(method, `/api/v1${path}`, { key, body })
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
  return res.json
}

async function exec(id: string, cmd: string, timeout = 120): Promise<{ stdout: string; stderr: string; exit_code: number }> {
  return api('POST', `/sandboxes/${id}/exec`, { cmd, timeout })
}

/** Evaluated in the page (this project's TypeScript has no DOM types). */
const HEADING_COLOR = "getComputedStyle(document.querySelector('#msg')).color"

const VITE_PROJECT: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'preview-check', private: true, type: 'module', scripts: { dev: 'vite --host 0.0.0.0 --port 5173 --strictPort' } }),
  // Vite refuses Host headers it does not know (DNS rebinding protection); previews arrive under the edge's names.
  'vite.config.js': 'export default { server: { allowedHosts: true } }\n',
  'index.html': '<!doctype html><html><body><h1 id="msg">hello from the sandbox</h1><script type="module" src="/main.js"></script></body></html>\n',
  'main.js': "import './style.css'\n",
  'style.css': 'h1 { color: rgb(255, 0, 0); }\n',
}

it('loads a Vite dev server through a preview token, keeps it on reload, hot-reloads over the edge, and answers 401 after expiry', async () => {
  const sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'vite-preview' })
  for (const [name, content] of Object.entries(VITE_PROJECT)) {
    const res = await t.call('PUT', `/api/v1/sandboxes/${sandbox.id}/files?path=/workspace/${name}`, {
      key,
      rawBody: content,
      headers: { 'content-type': 'application/octet-stream' },
    })
    expect(res.status, res.text).toBe(200)
  }
  const install = await exec(sandbox.id, 'cd /workspace && npm install vite@6 --no-audit --no-fund', 240)
  expect(install.exit_code, install.stderr).toBe(0)
  // A service: what an exec starts ends with it.
  await api('POST', `/sandboxes/${sandbox.id}/services`, { cmd: 'cd /workspace && npm run dev > /tmp/vite.log 2>&1' })
  const up = await exec(sandbox.id, 'for i in $(seq 100); do curl -sf localhost:5173 >/dev/null && exit 0; sleep 0.2; done; cat /tmp/vite.log; exit 1')
  expect(up.exit_code, up.stdout + up.stderr).toBe(0)

  const ttlSeconds = 20
  const minted = await api('POST', '/preview-tokens', { sandbox_id: sandbox.id, port: 5173, ttl_seconds: ttlSeconds })
  expect(minted.token).toMatch(/^mp_/)
  const url = new URL(minted.url)
  if (!url.searchParams.has('token')) url.searchParams.set('token', minted.token)
  expect(url.hostname).toBe(`5173-${sandbox.slug}.sandbox.localhost`)

  const page = await browser.newPage()
  const sockets: string[] = []
  page.on('websocket', (ws) => sockets.push(ws.url()))
  const first = await page.goto(url.toString())
  expect(first?.status()).toBe(200)
  // The token left the address bar for a cookie scoped to this host.
  expect(page.url()).not.toContain('token=')
  await expect.poll(() => page.textContent('#msg')).toBe('hello from the sandbox')
  const cookies = await page.context().cookies(page.url())
  expect(cookies).toEqual([expect.objectContaining({ name: 'miosa_access', httpOnly: true, secure: true, sameSite: 'None', domain: url.hostname })])

  const reload = await page.reload()
  expect(reload?.status()).toBe(200)
  await expect.poll(() => page.textContent('#msg')).toBe('hello from the sandbox')
  await expect.poll(() => page.evaluate(HEADING_COLOR)).toBe('rgb(255, 0, 0)')

  // Vite's client keeps a WebSocket to the page's own host: through the edge.
  await expect.poll(() => sockets.some((s) => new URL(s).hostname === url.hostname)).toBe(true)
  const marker = await page.evaluate('window.marker = Math.random()')
  await exec(sandbox.id, "printf 'h1 { color: rgb(0, 128, 0); }\\n' > /workspace/style.css")
  await expect.poll(() => page.evaluate(HEADING_COLOR), { timeout: 15_000 }).toBe('rgb(0, 128, 0)')
  // A hot update, not a reload: the page's own state survived it.
  expect(await page.evaluate('window.marker')).toBe(marker)

  const expiresAt = new Date(minted.expires_at).getTime()
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + 1500))
  const expired = await page.reload()
  expect(expired?.status()).toBe(401)
  await page.close()
}, 300_000)
