import { once } from 'node:events'
import { request } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { MiosaError } from '../../src/core/errors.js'
import { PASSWORD, TENANT_DOMAIN, TestBackend, call, closedPort, startEdge, startUpstream } from './fixtures.js'
import type { HostRoute } from '../../src/edge/edge-backend.js'
import type { TestEdge, Upstream } from './fixtures.js'

const BRAND = { accent_color: '#ff6600', logo_url: 'https://cdn.example.com/logo.png', support_url: 'https://help.example.com/' }
const HOSTILE = {
  accent_color: '"><script>alert(1)</script>',
  logo_url: 'https://cdn.example.com/"><script>alert(2)</script>',
  support_url: 'javascript:alert(3)',
}

let upstream: Upstream
let edge: TestEdge
let backend: TestBackend
let host: (label: string) => string

beforeAll(async () => {
  upstream = await startUpstream()
  backend = new TestBackend()
  const target = { host: '127.0.0.1', port: upstream.port }
  const nowhere = { host: '127.0.0.1', port: await closedPort() }
  backend.add({ slug: 'pub', public: true, target })
  backend.add({ slug: 'priv', target })
  backend.add({ slug: 'dead', public: true, port: 4000, target: nowhere, workspaceId: 'wsp_brand' })
  backend.add({ slug: 'evil', public: true, port: 4000, target: nowhere, workspaceId: 'wsp_evil' })
  backend.add({ slug: 'stopped', public: true, failure: new MiosaError('conflict', 'the sandbox is stopped; start it first') })
  backend.add({ slug: 'gone', public: true, failure: new MiosaError('not_found', 'sandbox sbx_gone not found') })
  backend.add({ slug: 'privbrand', workspaceId: 'wsp_brand', target })
  backend.brandings.set('wsp_brand', BRAND)
  backend.brandings.set('wsp_evil', HOSTILE)
  backend.domainBrandings.set(TENANT_DOMAIN, BRAND)
  edge = await startEdge(backend)
  host = (label) => `${label}.sandbox.localhost:${edge.port}`
})

afterAll(async () => {
  await edge?.close()
  await upstream?.close()
})

const json = (text: string): { method: string; url: string; rawHeaders: string[]; headers: Record<string, string>; body: string } => JSON.parse(text)

describe('routing', () => {
  it('answers an unknown host with a neutral 404 page', async () => {
    for (const h of [host('3000-nope'), `localhost:${edge.port}`, `127.0.0.1:${edge.port}`, 'garbage!!']) {
      const r = await call(edge.port, h, '/')
      expect(r.status, h).toBe(404)
      expect(r.headers['content-type']).toContain('text/html')
      expect(r.text).toContain('Nothing is here')
      expect(r.text).toContain('#4b5563')
    }
  })

  it('answers in JSON to a client that asks for it', async () => {
    const r = await call(edge.port, host('3000-nope'), '/', { headers: { accept: 'application/json' } })
    expect(r.status).toBe(404)
    expect(JSON.parse(r.text)).toEqual({ error: { code: 'not_found', message: expect.stringContaining('No app or preview') } })
  })

  it('brands the 404 of a host under a tenant preview domain, without the miosa wordmark', async () => {
    const r = await call(edge.port, `nothing.${TENANT_DOMAIN}`, '/')
    expect(r.status).toBe(404)
    expect(r.text).toContain('#ff6600')
    expect(r.text).toContain('https://cdn.example.com/logo.png')
    expect(r.text).toContain('https://help.example.com/')
    expect(r.text.toLowerCase()).not.toContain('miosa')
  })

  it('serves a site under a tenant preview domain, with the default port', async () => {
    const r = await call(edge.port, `pub.${TENANT_DOMAIN}`, '/x')
    expect(r.status).toBe(200)
    expect(json(r.text).url).toBe('/x')
    expect((await call(edge.port, `3000-pub.other.example.com`, '/')).status).toBe(404)
  })

  it('says so when the sandbox is not running or gone', async () => {
    const stopped = await call(edge.port, host('3000-stopped'), '/')
    expect(stopped.status).toBe(503)
    expect(stopped.text).toContain('The sandbox is not running: the sandbox is stopped; start it first')
    const gone = await call(edge.port, host('3000-gone'), '/')
    expect(gone.status).toBe(404)
  })

  it('refuses a request target that is not a path', async () => {
    const r = await call(edge.port, host('3000-pub'), 'http://elsewhere.example/')
    expect(r.status).toBe(400)
  })
})

describe('proxying', () => {
  it('forwards GET with the original Host and the X-Forwarded headers, and counts as activity', async () => {
    const before = backend.touched.length
    const r = await call(edge.port, host('3000-pub'), '/path/x?y=1&z=%20', { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'spoofed.example' } })
    expect(r.status).toBe(200)
    expect(r.headers['x-upstream']).toBe('yes')
    const seen = json(r.text)
    expect(seen.method).toBe('GET')
    expect(seen.url).toBe('/path/x?y=1&z=%20')
    expect(seen.headers.host).toBe(host('3000-pub'))
    expect(seen.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-forwarded-host']).toBe(host('3000-pub'))
    expect(backend.touched.slice(before)).toEqual(['sbx_pub'])
  })

  it('forwards a POST body, and keeps the upstream connection alive between requests', async () => {
    const connections = upstream.connections()
    for (let i = 0; i < 5; i++) {
      const r = await call(edge.port, host('3000-pub'), '/submit', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `hello ${i}` })
      expect(json(r.text)).toMatchObject({ method: 'POST', body: `hello ${i}` })
    }
    expect(upstream.connections() - connections).toBeLessThanOrEqual(1)
  })

  it('streams request and response bodies without buffering either', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/stream', method: 'POST', headers: { host: host('3000-pub'), 'transfer-encoding': 'chunked' } })
    req.write('first-chunk;')
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    expect(res.statusCode).toBe(200)
    // The first chunk comes back while the request is still open.
    const [first] = (await once(res, 'data')) as [Buffer]
    expect(first.toString()).toBe('first-chunk;')
    let rest = ''
    res.on('data', (chunk: Buffer) => (rest += chunk.toString()))
    req.end('second-chunk')
    await once(res, 'end')
    expect(rest).toBe('second-chunk')
  })

  it('streams a large body through intact', async () => {
    const body = 'x'.repeat(3 * 1024 * 1024)
    const r = await call(edge.port, host('3000-pub'), '/stream', { method: 'POST', body })
    expect(r.text.length).toBe(body.length)
  })

  it('drops hop-by-hop headers both ways, and the access cookie on the way up', async () => {
    const r = await call(edge.port, host('3000-pub'), '/', {
      headers: {
        connection: 'keep-alive, X-Down-Hop',
        'x-down-hop': 'secret',
        'keep-alive': 'timeout=99',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'proxy-foo': 'bar',
        cookie: 'a=1; miosa_access=c.sbx_pub.mp; b=2',
        authorization: 'Bearer app-token',
      },
    })
    const seen = json(r.text).headers
    for (const name of ['x-down-hop', 'keep-alive', 'te', 'proxy-authorization', 'proxy-foo']) expect(seen[name], name).toBeUndefined()
    expect(seen.cookie).toBe('a=1; b=2')
    expect(seen.authorization).toBe('Bearer app-token') // the app's own header goes through
    const hop = await call(edge.port, host('3000-pub'), '/hop')
    expect(hop.text).toBe('hop')
    expect(hop.headers['x-up-hop']).toBeUndefined()
    expect(hop.headers['proxy-authenticate']).toBeUndefined()
    expect(hop.headers['keep-alive']).not.toBe('timeout=99')
    expect(hop.headers['set-cookie']).toEqual(['a=1', 'b=2'])
  })

  it('delivers server-sent events as they come, holding the sandbox awake meanwhile', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/sse', headers: { host: host('3000-pub'), accept: 'text/event-stream' } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    expect(res.headers['content-type']).toBe('text/event-stream')
    const [first] = (await once(res, 'data')) as [Buffer]
    expect(first.toString()).toContain('data: one')
    expect(backend.activeHolds).toBe(1)
    let rest = ''
    res.on('data', (chunk: Buffer) => (rest += chunk.toString()))
    upstream.releaseEvent()
    await once(res, 'end')
    expect(rest).toContain('data: two')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(backend.activeHolds).toBe(0)
  })

  it('closes the upstream request when the visitor goes away', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/slow', headers: { host: host('3000-pub') } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    await once(res, 'data')
    req.destroy()
    await upstream.slowClosed
  })

  it('cuts the response short when the upstream goes away mid-body', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/die', headers: { host: host('3000-pub') } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    expect(res.headers['content-length']).toBe('100')
    res.resume()
    const outcome = await new Promise<string>((resolve) => {
      res.on('end', () => resolve('end'))
      res.on('error', () => resolve('error'))
      res.on('aborted', () => resolve('error'))
    })
    expect(outcome).toBe('error')
  })

  it('answers a port with nothing listening with a 502 that says so', async () => {
    const r = await call(edge.port, host('4000-dead'), '/')
    expect(r.status).toBe(502)
    expect(r.text).toContain('Nothing is listening on port 4000 in this sandbox')
    expect(r.text).toContain('#ff6600')
    expect(r.text).toContain('<img src="https://cdn.example.com/logo.png"')
    expect(r.text.toLowerCase()).not.toContain('miosa')
  })

  it('renders hostile branding escaped', async () => {
    const r = await call(edge.port, host('4000-evil'), '/')
    expect(r.status).toBe(502)
    expect(r.text).not.toContain('<script')
    expect(r.text).not.toContain('"><')
    expect(r.text).not.toContain('javascript:')
    expect(r.text).toContain('#4b5563') // an invalid accent falls back to the neutral one
    expect(r.headers['content-security-policy']).toContain("default-src 'none'")
  })
})

describe('WebSockets', () => {
  const open = (h: string, headers: Record<string, string> = {}): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${edge.port}/hmr`, { headers: { host: h, ...headers } })
      ws.once('open', () => resolve(ws))
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
      ws.once('error', reject)
    })

  it('echoes through the edge, with the X-Forwarded headers, holding the sandbox awake', async () => {
    const ws = await open(host('3000-pub'), { 'x-forwarded-for': '198.51.100.1' })
    expect(backend.activeHolds).toBe(1)
    ws.send('ping')
    const [message] = (await once(ws, 'message')) as [Buffer]
    expect(message.toString()).toBe('echo: ping')
    ws.send(Buffer.from([1, 2, 3]), { binary: true })
    const [binary] = (await once(ws, 'message')) as [Buffer]
    expect([...binary]).toEqual([1, 2, 3])
    const seen = upstream.upgrades.at(-1)
    expect(seen?.host).toBe(host('3000-pub'))
    expect(seen?.['x-forwarded-for']).toBe('198.51.100.1, 127.0.0.1')
    expect(seen?.['x-forwarded-proto']).toBe('http')
    ws.close()
    await once(ws, 'close')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(backend.activeHolds).toBe(0)
  })

  it('needs the access cookie for a private site, and refuses unknown hosts', async () => {
    await expect(open(host('3000-priv'))).rejects.toThrow('HTTP 401')
    await expect(open(host('3000-priv'), { cookie: 'miosa_access=wrong' })).rejects.toThrow('HTTP 401')
    const ws = await open(host('3000-priv'), { cookie: 'miosa_access=c.sbx_priv.mp' })
    ws.send('hi')
    const [message] = (await once(ws, 'message')) as [Buffer]
    expect(message.toString()).toBe('echo: hi')
    expect(upstream.upgrades.at(-1)?.cookie).toBeUndefined()
    ws.close()
    await expect(open(host('3000-nope'))).rejects.toThrow('HTTP 404')
    await expect(open(host('4000-dead'))).rejects.toThrow('HTTP 502')
  })
})

describe('access', () => {
  it('refuses a private site without access, whatever the Authorization header says', async () => {
    for (const headers of [{}, { authorization: 'Bearer msk_live_key' }, { cookie: 'miosa_access=forged' }] as Record<string, string>[]) {
      const r = await call(edge.port, host('3000-priv'), '/', { headers })
      expect(r.status).toBe(401)
      expect(r.text).toContain('This preview link has expired or is not valid. Ask for a new link.')
    }
    const branded = await call(edge.port, host('3000-privbrand'), '/')
    expect(branded.status).toBe(401)
    expect(branded.text).toContain('#ff6600')
  })

  it('exchanges a preview token for a cookie and redirects to the URL without the token', async () => {
    const r = await call(edge.port, host('3000-priv'), '/app/page?x=1&token=mp_good&y=a%20b')
    expect(r.status).toBe(303)
    expect(r.headers.location).toBe('/app/page?x=1&y=a%20b')
    expect(r.headers['set-cookie']).toEqual(['miosa_access=c.sbx_priv.mp; Path=/; HttpOnly; SameSite=None; Secure; Partitioned; Max-Age=600'])
    expect(r.headers['referrer-policy']).toBe('no-referrer')
    expect(r.headers['cache-control']).toBe('no-store')
    expect(backend.exchanges.at(-1)).toEqual({ token: 'mp_good', password: undefined, clientIp: '127.0.0.1' })

    const page = await call(edge.port, host('3000-priv'), '/app/page?x=1&y=a%20b', { headers: { cookie: 'miosa_access=c.sbx_priv.mp' } })
    expect(page.status).toBe(200)
    expect(json(page.text).url).toBe('/app/page?x=1&y=a%20b')

    // The cookie of one sandbox is no access to another.
    expect((await call(edge.port, host('3000-privbrand'), '/', { headers: { cookie: 'miosa_access=c.sbx_priv.mp' } })).status).toBe(401)
    // A revoked token's cookie stops working.
    backend.revoked.add('c.sbx_priv.mp')
    expect((await call(edge.port, host('3000-priv'), '/', { headers: { cookie: 'miosa_access=c.sbx_priv.mp' } })).status).toBe(401)
    backend.revoked.clear()
  })

  it('sets a Lax cookie where a browser would refuse a Secure one: plain HTTP on a name other than localhost', async () => {
    const r = await call(edge.port, `3000-priv.${TENANT_DOMAIN}`, '/?token=mp_good')
    expect(r.status).toBe(303)
    expect(r.headers['set-cookie']).toEqual(['miosa_access=c.sbx_priv.mp; Path=/; HttpOnly; SameSite=Lax; Max-Age=600'])
  })

  it('lets a preview’s pages show inside a frame on another site, and no other page', async () => {
    const framable = 'frame-ancestors *'
    for (const [h, path] of [[host('3000-priv'), '/'], [host('3000-priv'), '/?token=mp_expired'], [host('3000-priv'), '/?token=ms_pw'], [host('4000-dead'), '/'], [host('3000-nope'), '/']]) {
      const r = await call(edge.port, h as string, path as string)
      expect(r.status, `${h}${path}`).toBeGreaterThanOrEqual(400)
      expect(r.headers['content-security-policy'], `${h}${path}`).toContain(framable)
      expect(r.headers['referrer-policy']).toBe('no-referrer')
    }
    for (const h of [`localhost:${edge.port}`, 'garbage!!', `no-app.no-workspace.localhost:${edge.port}`]) {
      const r = await call(edge.port, h, '/')
      expect(r.status, h).toBe(404)
      expect(r.headers['content-security-policy'], h).toContain("frame-ancestors 'none'")
    }
  })

  it('keeps the redirect on the same host', async () => {
    const r = await call(edge.port, host('3000-priv'), '//evil.example/?token=mp_good')
    expect(r.status).toBe(303)
    expect(r.headers.location).toBe('/evil.example/')
  })

  it('refuses an invalid token or an API key in the URL', async () => {
    for (const token of ['mp_expired', 'msk_live_key']) {
      const r = await call(edge.port, host('3000-priv'), `/?token=${token}`)
      expect(r.status).toBe(401)
      expect(r.headers['set-cookie']).toBeUndefined()
    }
  })

  it('asks for the password of a share link, and sets the cookie once it is right', async () => {
    const path = '/docs?token=ms_pw&tab=2'
    const ask = await call(edge.port, host('3000-priv'), path)
    expect(ask.status).toBe(401)
    expect(ask.text).toContain('<form method="post"')
    expect(ask.text).toContain('name="password"')
    expect(ask.text).toContain('Enter the password of this link.')
    expect(ask.headers['referrer-policy']).toBe('no-referrer')

    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const wrong = await call(edge.port, host('3000-priv'), path, { method: 'POST', headers: form, body: 'password=nope' })
    expect(wrong.status).toBe(401)
    expect(wrong.text).toContain('Wrong password.')
    expect(wrong.text).toContain('name="password"')

    const right = await call(edge.port, host('3000-priv'), path, { method: 'POST', headers: form, body: `password=${encodeURIComponent(PASSWORD)}` })
    expect(right.status).toBe(303)
    expect(right.headers.location).toBe('/docs?tab=2')
    expect(right.headers['set-cookie']).toEqual(['miosa_access=c.sbx_priv.ms; Path=/; HttpOnly; SameSite=None; Secure; Partitioned; Max-Age=3600'])
    expect(backend.exchanges.at(-1)).toEqual({ token: 'ms_pw', password: PASSWORD, clientIp: '127.0.0.1' })
  })

  it('refuses a password form larger than 4 KiB, and too many guesses', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const big = await call(edge.port, host('3000-priv'), '/?token=ms_pw', { method: 'POST', headers: form, body: `password=${'x'.repeat(5000)}` })
    expect(big.status).toBe(413)
    backend.wrongGuesses = 3
    const limited = await call(edge.port, host('3000-priv'), '/?token=ms_pw', { method: 'POST', headers: form, body: 'password=guess' })
    expect(limited.status).toBe(429)
    expect(limited.text).toContain('Too many wrong passwords')
    backend.wrongGuesses = 0
  })

  it('escapes whatever the visitor puts in the URL', async () => {
    const r = await call(edge.port, host('3000-priv'), '/"><script>alert(1)</script>?token=ms_pw&x="><img%20src=x>')
    expect(r.status).toBe(401)
    expect(r.text).not.toContain('<script>')
    expect(r.text).not.toContain('<img src=x')
  })

  it('never logs a token or a cookie value', () => {
    const logs = edge.logs()
    expect(logs).toContain('"path":"/app/page"')
    for (const secret of ['mp_good', 'ms_pw', 'c.sbx_priv', 'msk_live_key', PASSWORD]) expect(logs, secret).not.toContain(secret)
  })
})

describe('site lookups', () => {
  it('are cached per host for a moment', async () => {
    const counting = new TestBackend()
    counting.add({ slug: 'pub', public: true, target: { host: '127.0.0.1', port: upstream.port } })
    const routes: HostRoute[] = []
    const resolve = counting.resolve.bind(counting)
    counting.resolve = async (route) => {
      routes.push(route)
      return resolve(route)
    }
    const cached = await startEdge(counting, { resolveCacheMs: 200 })
    try {
      const h = `3000-pub.sandbox.localhost:${cached.port}`
      for (let i = 0; i < 3; i++) expect((await call(cached.port, h, '/')).status).toBe(200)
      expect((await call(cached.port, `3000-none.sandbox.localhost:${cached.port}`, '/')).status).toBe(404)
      expect((await call(cached.port, `3000-none.sandbox.localhost:${cached.port}`, '/')).status).toBe(404)
      expect(routes).toEqual([
        { slug: 'pub', port: 3000 },
        { slug: 'none', port: 3000 },
      ])
      await new Promise((resolve) => setTimeout(resolve, 250))
      expect((await call(cached.port, h, '/')).status).toBe(200)
      expect(routes).toHaveLength(3)
    } finally {
      await cached.close()
    }
  })
})
