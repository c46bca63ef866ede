import { once } from 'node:events'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseFiles } from '../../src/edge/release-files.js'
import { isHashed, normalizePath, parseAcceptEncoding, StaticServer } from '../../src/edge/static-server.js'
import { startEdge, TestBackend } from './fixtures.js'
import type { TestEdge } from './fixtures.js'
import { SITE, startStaticFixture } from './static-fixtures.js'
import type { StaticFixture } from './static-fixtures.js'

// Published static apps at the edge: a release tarball in a real FsBlobStore, extracted
// by the real createReleaseFiles, served under `<deployment>.<workspace>.localhost`.

const HOST = 'smile.acme.localhost'
const SPA_HOST = 'spa.acme.localhost'

let f: StaticFixture
let backend: TestBackend
let edge: TestEdge

beforeAll(async () => {
  f = await startStaticFixture()
  backend = new TestBackend()
  backend.releaseFilesOf = createReleaseFiles({ blobs: f.blobs, dir: f.releasesDir })
  backend.addApp({ deploymentSlug: 'smile', workspaceSlug: 'acme', sha256: f.sha256 })
  backend.addApp({ deploymentSlug: 'spa', workspaceSlug: 'acme', sha256: f.sha256, spaFallback: true, workspaceId: 'wsp_branded' })
  backend.addApp({ deploymentSlug: 'api', workspaceSlug: 'acme', sha256: f.sha256, kind: 'dynamic' })
  backend.brandings.set('wsp_branded', { accent_color: '#ff0066' })
  edge = await startEdge(backend, { resolveCacheMs: 1000 })
})

afterAll(async () => {
  await edge.close()
  await f.close()
})

interface Got {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

function get(path: string, o: { host?: string; method?: string; headers?: Record<string, string> } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: edge.port, path, method: o.method ?? 'GET', headers: { host: o.host ?? HOST, ...o.headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const original = (path: string): Buffer => Buffer.from(SITE[path] as string | Buffer)

describe('static apps at the edge', () => {
  it('serves files with their content types', async () => {
    const cases: [string, string, string][] = [
      ['/', 'index.html', 'text/html; charset=utf-8'],
      ['/index.html', 'index.html', 'text/html; charset=utf-8'],
      ['/assets/app-Bx12cd34.js', 'assets/app-Bx12cd34.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'style.css', 'text/css; charset=utf-8'],
      ['/data.json', 'data.json', 'application/json; charset=utf-8'],
      ['/logo.png', 'logo.png', 'image/png'],
      ['/robots.txt', 'robots.txt', 'text/plain; charset=utf-8'],
      ['/unknown.xyz', 'unknown.xyz', 'application/octet-stream'],
      ['/style.css?v=2', 'style.css', 'text/css; charset=utf-8'],
    ]
    for (const [path, file, type] of cases) {
      const r = await get(path)
      expect(r.status, path).toBe(200)
      expect(r.headers['content-type'], path).toBe(type)
      expect(r.headers['x-content-type-options']).toBe('nosniff')
      expect(r.body, path).toEqual(original(file))
      expect(Number(r.headers['content-length'])).toBe(original(file).length)
    }
    // Twice more from the in-memory cache: the same answer.
    for (let i = 0; i < 2; i++) expect((await get('/style.css')).body).toEqual(original('style.css'))
  })

  it('answers a matching If-None-Match with 304', async () => {
    const first = await get('/style.css')
    const etag = first.headers.etag as string
    expect(etag).toMatch(/^"[^"]+"$/)
    expect((await get('/style.css')).headers.etag).toBe(etag)
    for (const condition of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const r = await get('/style.css', { headers: { 'if-none-match': condition } })
      expect(r.status, condition).toBe(304)
      expect(r.body.length).toBe(0)
      expect(r.headers.etag).toBe(etag)
    }
    expect((await get('/style.css', { headers: { 'if-none-match': '"other"' } })).status).toBe(200)
    expect((await get('/data.json')).headers.etag).not.toBe(etag)
  })

  it('caches hashed assets for a year and revalidates HTML and the rest', async () => {
    const immutable = 'public, max-age=31536000, immutable'
    expect((await get('/assets/app-Bx12cd34.js')).headers['cache-control']).toBe(immutable)
    expect((await get('/main.3f2a1b9c.css')).headers['cache-control']).toBe(immutable)
    for (const path of ['/', '/index.html', '/about/', '/style.css', '/my-component-library.js', '/data.json']) {
      expect((await get(path)).headers['cache-control'], path).toBe('no-cache')
    }
    expect(isHashed('app-Bx12cd34.js', 'app-Bx12cd34.js')).toBe(true)
    expect(isHashed('chunk.3f2a1b9c.js', 'chunk.3f2a1b9c.js')).toBe(true)
    expect(isHashed('my-component-library.js', 'my-component-library.js')).toBe(false)
    expect(isHashed('app.js', 'app.js')).toBe(false)
  })

  it('sends brotli or gzip siblings to clients that accept them', async () => {
    const html = original('index.html')
    const br = await get('/', { headers: { 'accept-encoding': 'gzip, deflate, br' } })
    expect(br.headers['content-encoding']).toBe('br')
    expect(br.headers.vary).toBe('Accept-Encoding')
    expect(Number(br.headers['content-length'])).toBe(br.body.length)
    expect(br.body.length).toBeLessThan(html.length)
    expect(brotliDecompressSync(br.body)).toEqual(html)

    const gz = await get('/', { headers: { 'accept-encoding': 'gzip' } })
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length)
    expect(gunzipSync(gz.body)).toEqual(html)
    expect(gz.headers.etag).not.toBe(br.headers.etag)

    expect((await get('/', { headers: { 'accept-encoding': 'br;q=0, gzip' } })).headers['content-encoding']).toBe('gzip')
    const plain = await get('/', { headers: { 'accept-encoding': 'identity' } })
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.headers.vary).toBe('Accept-Encoding')
    expect(plain.body).toEqual(html)
    // A 304 for any representation's tag.
    expect((await get('/', { headers: { 'accept-encoding': 'br', 'if-none-match': gz.headers.etag as string } })).status).toBe(304)

    const js = await get('/assets/app-Bx12cd34.js', { headers: { 'accept-encoding': 'br' } })
    expect(brotliDecompressSync(js.body)).toEqual(original('assets/app-Bx12cd34.js'))
    // No sibling (small, or not text): as it is, no Vary.
    const css = await get('/style.css', { headers: { 'accept-encoding': 'br, gzip' } })
    expect(css.headers['content-encoding']).toBeUndefined()
    expect(css.headers.vary).toBeUndefined()
    expect(parseAcceptEncoding('gzip;q=0.5, br;q=1.0')).toBe(3)
    expect(parseAcceptEncoding('*;q=0')).toBe(0)
  })

  it('serves index.html for directories, redirecting to the trailing slash first', async () => {
    const about = await get('/about/')
    expect(about.status).toBe(200)
    expect(about.body).toEqual(original('about/index.html'))
    const redirect = await get('/about?x=1')
    expect(redirect.status).toBe(301)
    expect(redirect.headers.location).toBe('/about/?x=1')
    expect((await get('/assets/')).status).toBe(404) // a directory without index.html
  })

  it('falls back to index.html for app routes only when the site asks for it', async () => {
    const off = await get('/dashboard/users', { headers: { accept: 'text/html' } })
    expect(off.status).toBe(404)
    expect(off.headers['content-type']).toBe('text/html; charset=utf-8')

    const on = await get('/dashboard/users', { host: SPA_HOST })
    expect(on.status).toBe(200)
    expect(on.body).toEqual(original('index.html'))
    expect(on.headers['cache-control']).toBe('no-cache')
    // A missing file with an extension is a 404 (branded), unless a browser asks for a page.
    const missing = await get('/missing.js', { host: SPA_HOST })
    expect(missing.status).toBe(404)
    expect(missing.body.toString()).toContain('#ff0066')
    expect((await get('/missing.v2', { host: SPA_HOST, headers: { accept: 'text/html,*/*' } })).status).toBe(200)
    // Real files are still themselves.
    expect((await get('/data.json', { host: SPA_HOST })).body).toEqual(original('data.json'))
  })

  it('refuses paths that try to leave the release', async () => {
    for (const path of ['/../../etc/passwd', '/assets/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets%2fapp-Bx12cd34.js', '/index.html%00.png', '/..%5c..%5cetc', '/%', '/a\\..\\b', '/./index.html']) {
      const r = await get(path)
      expect([400, 404], path).toContain(r.status)
      expect(r.body.toString(), path).not.toContain('root:')
    }
    expect(normalizePath('/a/%2e%2e/b')).toBeUndefined()
    expect(normalizePath('/a//b/')).toBe('a/b')
    expect(normalizePath('/caf%C3%A9.txt')).toBe('café.txt')
  })

  it('answers HEAD with the headers of GET and no body', async () => {
    const r = await get('/index.html', { method: 'HEAD', headers: { 'accept-encoding': 'br' } })
    expect(r.status).toBe(200)
    expect(r.body.length).toBe(0)
    expect(r.headers['content-encoding']).toBe('br')
    expect(Number(r.headers['content-length'])).toBeGreaterThan(0)
    expect(r.headers.etag).toBeDefined()
  })

  it('answers other methods with 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await get('/', { method })
      expect(r.status, method).toBe(405)
      expect(r.headers.allow).toBe('GET, HEAD')
    }
  })

  it('says when nothing is published, and when a dynamic app has no instance ready', async () => {
    const none = await get('/', { host: 'nothing.acme.localhost' })
    expect(none.status).toBe(404)
    expect(none.body.toString()).toContain('Nothing is published')
    const dynamic = await get('/', { host: 'api.acme.localhost' })
    expect(dynamic.status).toBe(503)
    expect(dynamic.headers['retry-after']).toBe('2')
    expect(dynamic.body.toString()).toContain('Starting')
  })

  it('extracts the release once for many concurrent first requests, and reuses the app lookup', async () => {
    const fresh = new TestBackend()
    const before = f.gets()
    fresh.releaseFilesOf = createReleaseFiles({ blobs: f.blobs, dir: join(f.tmp, 'concurrent') })
    fresh.addApp({ deploymentSlug: 'smile', workspaceSlug: 'acme', sha256: f.sha256 })
    const other = await startEdge(fresh, { resolveCacheMs: 1000 })
    try {
      const replies = await Promise.all(
        Array.from({ length: 16 }, () =>
          new Promise<number>((resolve, reject) => {
            request({ host: '127.0.0.1', port: other.port, path: '/', headers: { host: HOST } }, (res) => {
              res.resume()
              res.on('end', () => resolve(res.statusCode ?? 0))
            })
              .on('error', reject)
              .end()
          }),
        ),
      )
      expect(replies).toEqual(Array.from({ length: 16 }, () => 200))
      expect(f.gets() - before).toBe(1)
      expect(fresh.resolveAppCalls).toBeLessThanOrEqual(16)
    } finally {
      await other.close()
    }
  })

  it('refuses WebSocket upgrades on app hosts', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port: edge.port, path: '/', headers: { host: HOST, connection: 'Upgrade', upgrade: 'websocket' } })
        .on('response', (res) => resolve(res.statusCode ?? 0))
        .on('upgrade', () => reject(new Error('upgraded')))
        .on('error', reject)
        .end()
    })
    expect(status).toBe(404)
  })

  it('stays correct with a tiny cache (entries and bytes evicted as it goes)', async () => {
    const dir = await backend.releaseFiles(f.sha256)
    const files = new StaticServer({ maxEntries: 3, maxCacheBytes: 4000 })
    const server = createServer((req, res) => {
      void files.serve(req, res, dir, { spaFallback: false }, async (_req, r) => {
        r.writeHead(404)
        r.end()
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    try {
      const paths = ['index.html', 'style.css', 'data.json', 'logo.png', 'robots.txt', 'assets/app-Bx12cd34.js', 'main.3f2a1b9c.css']
      for (let round = 0; round < 3; round++) {
        for (const path of paths) {
          const body = await new Promise<Buffer>((resolve, reject) => {
            request({ host: '127.0.0.1', port, path: `/${path}` }, (res) => {
              const chunks: Buffer[] = []
              res.on('data', (chunk: Buffer) => chunks.push(chunk))
              res.on('end', () => resolve(Buffer.concat(chunks)))
            })
              .on('error', reject)
              .end()
          })
          expect(body, path).toEqual(original(path))
        }
      }
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
})
