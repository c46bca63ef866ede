import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDnsServer } from '../helpers/dns-server.js'
import type { TestDnsServer } from '../helpers/dns-server.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// The edge in front of a real sandbox on the real Docker Engine, reached with a plain
// HTTP client: share links with and without a password, revocation, a public sandbox,
// a paused sandbox resumed by a preview request, branded pages, and a tenant preview
// domain verified against a DNS server this test runs.

let t: TestPlatform
let dns: TestDnsServer
let key: string
let sandbox: any
let edgePort: number

interface EdgeResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A request to the edge for `host` (the Host header), the way a browser on this machine would send it. */
function edge(host: string, path = '/', o: { method?: string; cookie?: string; form?: Record<string, string> } = {}): Promise<EdgeResponse> {
  const body = o.form === undefined ? undefined : new URLSearchParams(o.form).toString()
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: edgePort,
        path,
        method: o.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: {
          host: `${host}:${edgePort}`,
          accept: 'text/html',
          ...(o.cookie === undefined ? {} : { cookie: o.cookie }),
          ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const res = await t.call(method, `/api/v1${path}`, { key, body })
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
  return res.json
}

const exec = (cmd: string) => api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd })

/** A tiny server on port 3000 in the sandbox, started in the background. */
async function startServer(): Promise<void> {
  // A service: what an exec starts ends with it.
  await api('POST', `/sandboxes/${sandbox.id}/services`, {
    cmd: ['node', '-e', "require('http').createServer((q,s)=>s.end('hello from '+q.headers.host+' '+q.url)).listen(3000)"],
  })
  const up = await exec('for i in $(seq 50); do curl -sf localhost:3000 >/dev/null && exit 0; sleep 0.1; done; exit 1')
  expect(up.exit_code).toBe(0)
}

/** A share or preview URL's host and path (with its query). */
function target(url: string): { host: string; path: string } {
  const u = new URL(url)
  return { host: u.hostname, path: `${u.pathname}${u.search}` }
}

function cookieOf(res: EdgeResponse): string {
  const set = res.headers['set-cookie']
  expect(set, 'a Set-Cookie header').toBeDefined()
  return (set as string[])[0]!.split(';')[0] as string
}

beforeAll(async () => {
  dns = await startDnsServer()
  t = await startTestPlatform({ dnsServers: [dns.address] })
  edgePort = Number(new URL(t.edgeUrl).port)
  key = (await t.newOrganization('Edge Org')).key
  sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'edge-preview' })
  await startServer()
}, 120_000)

afterAll(async () => {
  await t?.close()
  await dns?.close()
}, 120_000)

describe.sequential('previews through the edge', () => {
  const host = () => `3000-${sandbox.slug}.sandbox.localhost`

  it('lists the preview URL on the sandbox and keeps previews private by default', async () => {
    expect(sandbox.previews).toEqual({ '3000': `http://${host()}:${edgePort}` })
    const res = await edge(host())
    expect(res.status).toBe(401)
    expect(res.body).not.toContain('hello from')
    // The organization's API key opens nothing at the edge.
    expect((await edge(host(), `/?token=${key}`)).status).toBe(401)
  })

  it('opens with a share link: the token becomes a host-only cookie, then revocation closes it', async () => {
    const share = await api('POST', '/share-tokens', { sandbox_id: sandbox.id, port: 3000, name: 'client review' })
    expect(share.token).toMatch(/^ms_/)
    const { host: shareHost, path } = target(share.url)
    expect(shareHost).toBe(host())
    const first = await edge(shareHost, path)
    expect(first.status).toBe(303)
    expect(first.headers.location).not.toContain('token=')
    const setCookie = (first.headers['set-cookie'] as string[])[0] as string
    expect(setCookie).toMatch(/HttpOnly/i)
    expect(setCookie).toMatch(/SameSite=None; Secure; Partitioned/i)
    expect(setCookie).not.toMatch(/Domain=/i)
    const cookie = cookieOf(first)
    const served = await edge(host(), '/page?x=1', { cookie })
    expect(served.status).toBe(200)
    expect(served.body).toBe(`hello from ${host()}:${edgePort} /page?x=1`)
    const listed = await api('GET', `/share-tokens?sandbox_id=${sandbox.id}`)
    expect(JSON.stringify(listed)).not.toContain(share.token)

    await api('DELETE', `/share-tokens/${share.id}`)
    await expect.poll(async () => (await edge(host(), '/', { cookie })).status, { timeout: 8000, interval: 500 }).toBe(401)
    expect((await edge(shareHost, path)).status).toBe(401)
  })

  it('asks for the password of a protected share link, refuses a wrong one, and opens with the right one', async () => {
    const share = await api('POST', '/share-tokens', { sandbox_id: sandbox.id, port: 3000, password: 'correct horse battery' })
    const { path } = target(share.url)
    const prompt = await edge(host(), path)
    expect(prompt.status).toBe(401)
    expect(prompt.body).toMatch(/<form[^>]*method="post"/i)
    expect(prompt.body).toMatch(/type="password"/)
    const wrong = await edge(host(), path, { form: { password: 'wrong guess' } })
    expect(wrong.status).toBe(401)
    expect(wrong.headers['set-cookie']).toBeUndefined()
    const right = await edge(host(), path, { form: { password: 'correct horse battery' } })
    expect(right.status).toBe(303)
    expect((await edge(host(), '/', { cookie: cookieOf(right) })).status).toBe(200)
  })

  it('serves a public sandbox to anyone', async () => {
    const updated = await api('PATCH', `/sandboxes/${sandbox.id}`, { preview_public: true })
    expect(updated.preview_public).toBe(true)
    await expect.poll(async () => (await edge(host())).status, { timeout: 5000, interval: 250 }).toBe(200)
  })

  it('renders branded 404 and 502 pages with the tenant colour and logo and no miosa wordmark', async () => {
    await api('PUT', '/tenant/branding', {
      workspace_id: sandbox.workspace_id,
      logo_url: 'https://cdn.clinic.example/logo.png',
      accent_color: '#ff6600',
      support_url: 'https://help.clinic.example/',
    })
    const nothingListening = `3999-${sandbox.slug}.sandbox.localhost`
    const page = await edge(nothingListening)
    expect(page.status).toBe(502)
    expect(page.body).toContain('#ff6600')
    expect(page.body).toContain('https://cdn.clinic.example/logo.png')
    expect(page.body).toContain('https://help.clinic.example/')
    expect(page.body.toLowerCase()).not.toContain('miosa')
    const unknown = await edge('3000-nosuchslug.sandbox.localhost')
    expect(unknown.status).toBe(404)
    expect(unknown.body).not.toContain('#ff6600')
  })

  it('resumes a paused sandbox on a preview request instead of showing an error', async () => {
    expect((await api('POST', `/sandboxes/${sandbox.id}/stop`)).state).toBe('paused')
    const res = await edge(host())
    expect((await api('GET', `/sandboxes/${sandbox.id}`)).state).toBe('running')
    // Stopping ended the sandbox's processes and the resume starts its service again: the
    // first answer is the app itself when it was quick, else a 503 saying it is starting
    // (test/e2e/sandbox-services.test.ts follows that page); never an error about a pause.
    if (res.status === 503) {
      expect(res.headers['retry-after']).toBe('2')
      expect(res.body).toContain('3000')
    } else {
      expect(res.status, res.body).toBe(200)
      expect(res.body).toContain('hello from')
    }
    await expect.poll(async () => (await edge(host())).status, { timeout: 20_000, interval: 200 }).toBe(200)
  }, 60_000)

  it('refuses a hostile branding value, naming the field (the edge escapes what it renders anyway: test/edge)', async () => {
    const hostile = 'https://help.clinic.example/?q="><script>alert(1)</script>'
    const res = await t.call('PUT', '/api/v1/tenant/branding', {
      key,
      body: { workspace_id: sandbox.workspace_id, logo_url: 'https://cdn.clinic.example/logo.png', accent_color: '#ff6600', support_url: hostile },
    })
    expect(res.status, res.text).toBe(400)
    expect(res.json.error.message).toContain('support_url')
    const page = await edge(`3999-${sandbox.slug}.sandbox.localhost`)
    expect(page.body).not.toContain('<script>alert(1)')
    expect(page.body).toContain('https://help.clinic.example/') // the branding set before is untouched
  })

  it('serves previews under a verified tenant preview domain', async () => {
    const domain = 'preview.clinic.test'
    const set = await api('POST', '/tenant/preview-domain', { workspace_id: sandbox.workspace_id, domain })
    expect(set.verified).toBe(false)
    // Not verified yet: the edge does not answer for it.
    expect((await edge(`${sandbox.slug}.${domain}`)).status).toBe(404)
    const refused = await t.call('POST', '/api/v1/tenant/preview-domain/verify', { key, body: { workspace_id: sandbox.workspace_id } })
    expect(refused.status).toBeGreaterThanOrEqual(400)
    dns.cname(domain, set.cname_target)
    dns.cname(`*.${domain}`, set.cname_target)
    const verified = await api('POST', '/tenant/preview-domain/verify', { workspace_id: sandbox.workspace_id })
    expect(verified.verified).toBe(true)
    await expect.poll(async () => (await edge(`${sandbox.slug}.${domain}`)).status, { timeout: 5000, interval: 250 }).toBe(200)
    const res = await edge(`3000-${sandbox.slug}.${domain}`, '/x')
    expect(res.body).toBe(`hello from 3000-${sandbox.slug}.${domain}:${edgePort} /x`)
    const unknown = await edge(`nosuchslug.${domain}`)
    expect(unknown.status).toBe(404)
    expect(unknown.body).toContain('#ff6600') // the tenant's own 404
    expect((await api('GET', `/sandboxes/${sandbox.id}`)).previews['3000']).toContain(domain)
  })
})
