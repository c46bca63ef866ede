import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chromium } from 'playwright-core'
import type { Browser, Frame, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callApi, writeWorkspace } from '../helpers/e2e.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// A customer's product embeds a sandbox's preview: a page on one site (a small server on
// 127.0.0.1) holds an <iframe> of the preview on another (*.sandbox.localhost), opened with
// a preview token (mp_) and with a share link (ms_), in Debian's Chromium. The first page,
// its assets, and a navigation inside the frame are served; the token never reaches a
// Referer; a revoked or expired token shows the tenant's branded error inside the frame.

const ACCENT = '#0f766e'
const ACCENT_RGB = 'rgb(15, 118, 110)'

let t: TestPlatform
let key: string
let browser: Browser
let embedder: Server
let embedderOrigin: string
let sandbox: any
/** Path → preview URL the page at that path frames (kept out of the embedding page's own URL). */
const framed = new Map<string, string>()

const api = (method: string, path: string, body?: unknown) => callApi(t, key, method, path, body)

// The preview: a node:http server of three files that logs every request's Referer.
const SITE: Record<string, string> = {
  'site.js': `const http = require('node:http'), fs = require('node:fs')
const types = { html: 'text/html', css: 'text/css', js: 'text/javascript' }
http.createServer((req, res) => {
  fs.appendFileSync('/tmp/referers.log', (req.headers.referer || '-') + ' ' + req.url + '\\n')
  const name = req.url === '/' ? 'index.html' : req.url.slice(1).split('?')[0]
  fs.readFile('/workspace/public/' + name, (err, body) => {
    if (err) { res.statusCode = 404; res.end('no such file'); return }
    res.setHeader('content-type', types[name.split('.').pop()] || 'application/octet-stream')
    res.end(body)
  })
}).listen(3000)
`,
  'public/index.html':
    '<!doctype html><html><head><link rel="stylesheet" href="/style.css"></head><body><h1 id="msg">hello from the preview</h1><p id="js">no script ran</p><a id="next" href="/second.html">next</a><script src="/app.js"></script></body></html>\n',
  'public/second.html': '<!doctype html><html><head><link rel="stylesheet" href="/style.css"></head><body><h1 id="second">the second page</h1></body></html>\n',
  'public/style.css': 'h1 { color: rgb(255, 0, 0); }\n',
  'public/app.js': "document.getElementById('js').textContent = 'the script ran'\n",
}

beforeAll(async () => {
  t = await startTestPlatform()
  key = (await t.newOrganization('Embed Org')).key
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'embedded-preview', timeout: '1h' })
  await writeWorkspace(t, key, sandbox.id, SITE)
  // A service: what an exec starts ends with it.
  const site = await api('POST', `/sandboxes/${sandbox.id}/services`, { cmd: ['node', '/workspace/site.js'] })
  const up = await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: `for i in $(seq 50); do curl -sf localhost:3000 >/dev/null && exit 0; sleep 0.1; done; cat ${site.log_path}; exit 1` })
  expect(up.exit_code, up.stdout).toBe(0)
  await api('PUT', '/tenant/branding', { workspace_id: sandbox.workspace_id, logo_url: 'https://cdn.clinic.example/logo.png', accent_color: ACCENT })

  embedder = createServer((req, res) => {
    const src = framed.get(req.url ?? '')
    if (src === undefined) {
      res.statusCode = 404
      res.end()
      return
    }
    res.setHeader('content-type', 'text/html')
    res.end(`<!doctype html><html><body><h1>Clinic dashboard</h1><iframe id="preview" src="${src.replaceAll('&', '&amp;').replaceAll('"', '&quot;')}" width="800" height="600"></iframe></body></html>`)
  })
  await new Promise<void>((resolve) => embedder.listen(0, '127.0.0.1', resolve))
  embedderOrigin = `http://127.0.0.1:${(embedder.address() as AddressInfo).port}`

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await new Promise((resolve) => embedder?.close(resolve))
  await t?.close()
}, 120_000)

/** Opens, in a fresh browser profile, the customer's page that frames `previewUrl`; answers the page and the frame. */
async function embed(previewUrl: string): Promise<{ page: Page; frame: () => Frame }> {
  const path = `/page-${framed.size + 1}`
  framed.set(path, previewUrl)
  const context = await browser.newContext()
  const page = await context.newPage()
  const host = new URL(previewUrl).hostname
  await page.goto(`${embedderOrigin}${path}`)
  const frame = () => {
    const found = page.frames().find((f) => f !== page.mainFrame() && f.url().includes(host))
    if (found === undefined) throw new Error(`no frame of ${host} in ${page.frames().map((f) => f.url()).join(', ')}`)
    return found
  }
  await expect.poll(() => page.frames().some((f) => f !== page.mainFrame() && f.url().includes(host))).toBe(true)
  return { page, frame }
}

/** The preview URL with its token in the query, as the API hands it out. */
function withToken(minted: { url: string; token: string }): string {
  const url = new URL(minted.url)
  if (!url.searchParams.has('token')) url.searchParams.set('token', minted.token)
  expect(url.hostname).toBe(`3000-${sandbox.slug}.sandbox.localhost`)
  return url.toString()
}

async function expectServedInFrame(previewUrl: string, token: string): Promise<void> {
  const { page, frame } = await embed(previewUrl)
  await expect.poll(() => frame().textContent('#msg').catch(() => null), { timeout: 15_000 }).toBe('hello from the preview')
  expect(frame().url()).not.toContain('token=')
  // Its assets: the stylesheet and the script came through the edge with the cookie.
  expect(await frame().evaluate("getComputedStyle(document.querySelector('#msg')).color")).toBe('rgb(255, 0, 0)')
  await expect.poll(() => frame().textContent('#js')).toBe('the script ran')
  // A navigation inside the frame.
  await frame().click('#next')
  await expect.poll(() => frame().textContent('#second').catch(() => null), { timeout: 15_000 }).toBe('the second page')
  expect(frame().url()).toMatch(/\/second\.html$/)
  const cookies = await page.context().cookies(frame().url())
  expect(cookies).toEqual([expect.objectContaining({ name: 'miosa_access', httpOnly: true, secure: true, sameSite: 'None' })])
  // No request the app saw carried the token in its Referer.
  const referers = await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: 'cat /tmp/referers.log' })
  expect(referers.stdout).toContain('/second.html')
  expect(referers.stdout).not.toContain(token)
  expect(referers.stdout).not.toContain('token=')
  await page.context().close()
}

async function expectBrandedErrorInFrame(previewUrl: string): Promise<void> {
  const { page, frame } = await embed(previewUrl)
  await expect.poll(() => frame().textContent('h1').catch(() => null), { timeout: 15_000 }).toBe('Link expired')
  expect(await frame().evaluate("getComputedStyle(document.querySelector('h1')).color")).toBe(ACCENT_RGB)
  expect(frame().url()).toContain(`3000-${sandbox.slug}.sandbox.localhost`)
  expect(await page.textContent('h1')).toBe('Clinic dashboard')
  await page.context().close()
}

describe('a preview embedded in another site’s page', () => {
  it('opens with a preview token (mp_): first page, assets and a navigation inside the frame', async () => {
    const minted = await api('POST', '/preview-tokens', { sandbox_id: sandbox.id, port: 3000, ttl_seconds: 600 })
    expect(minted.token).toMatch(/^mp_/)
    await expectServedInFrame(withToken(minted), minted.token)
  }, 60_000)

  it('opens with a share link (ms_) the same way, and shows the branded error in the frame once it is revoked', async () => {
    const share = await api('POST', '/share-tokens', { sandbox_id: sandbox.id, port: 3000, name: 'embedded' })
    expect(share.token).toMatch(/^ms_/)
    await expectServedInFrame(withToken(share), share.token)
    await api('DELETE', `/share-tokens/${share.id}`)
    await expectBrandedErrorInFrame(withToken(share))
  }, 60_000)

  it('shows the branded error in the frame for an expired preview token', async () => {
    const minted = await api('POST', '/preview-tokens', { sandbox_id: sandbox.id, port: 3000, ttl_seconds: 1 })
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, new Date(minted.expires_at).getTime() - Date.now()) + 1500))
    await expectBrandedErrorInFrame(withToken(minted))
  }, 60_000)
})
