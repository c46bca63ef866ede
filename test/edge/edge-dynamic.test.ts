import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { InflightRequests } from '../../src/core/inflight.js'
import type { AppSite } from '../../src/edge/edge-backend.js'
import { TestBackend, call, closedPort, startEdge, startRawUpstream } from './fixtures.js'
import type { TestEdge } from './fixtures.js'

// Dynamic apps at the edge: real node:http servers on loopback stand for an app's runtime
// instances; TestBackend.targets says which are healthy. The edge balances by the requests
// it has in flight to each (counted in an InflightRequests the test reads), retries a
// failed connection once elsewhere when that is safe, and streams both ways.

interface Instance {
  name: string
  port: number
  target: { host: string; port: number }
  /** `METHOD path` of every request seen, in order. */
  hits: string[]
  /** /hang requests, never answered; resolves when one's connection closes. */
  hangClosed: () => Promise<void>
  /** /slow responses held open, until finishSlow(). */
  slow: ServerResponse[]
  /** Resolves when a /slow request's connection closes. */
  slowClosed: () => Promise<void>
  finishSlow: () => void
  /** Sends the second event of every open /sse response, and ends it. */
  nextEvent: () => void
  close: () => Promise<void>
}

async function startInstance(name: string): Promise<Instance> {
  const hits: string[] = []
  const slow: ServerResponse[] = []
  const events: ServerResponse[] = []
  let slowClosedResolve: () => void = () => {}
  let slowClosedPromise = new Promise<void>((resolve) => (slowClosedResolve = resolve))
  let hangClosedResolve: () => void = () => {}
  let hangClosedPromise = new Promise<void>((resolve) => (hangClosedResolve = resolve))
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] as string
    hits.push(`${req.method} ${path}`)
    if (path === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first')
      slow.push(res)
      req.socket.once('close', () => slowClosedResolve())
      return
    }
    if (path === '/hang') {
      req.socket.once('close', () => {
        hangClosedResolve()
        hangClosedPromise = new Promise<void>((resolve) => (hangClosedResolve = resolve))
      })
      return
    }
    if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.write(`data: one from ${name}\n\n`)
      events.push(res)
      return
    }
    if (path === '/die') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
      res.write('partial')
      setTimeout(() => res.socket?.destroy(), 20)
      return
    }
    const hash = createHash('sha256')
    let bytes = 0
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
      if (bytes < 64 * 1024) chunks.push(chunk)
    })
    req.on('end', () => {
      const body = path === '/hash' ? { name, bytes, sha256: hash.digest('hex') } : { name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }
      res.writeHead(200, { 'content-type': 'application/json', 'x-instance': name })
      res.end(JSON.stringify(body))
    })
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`${name}: ${String(data)}`)))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    name,
    port,
    target: { host: '127.0.0.1', port },
    hits,
    hangClosed: () => hangClosedPromise,
    slow,
    slowClosed: () => slowClosedPromise,
    finishSlow: () => {
      for (const res of slow.splice(0)) res.end('last')
      slowClosedPromise = new Promise<void>((resolve) => (slowClosedResolve = resolve))
    },
    nextEvent: () => {
      for (const res of events.splice(0)) res.end(`data: two from ${name}\n\n`)
    },
    close: async () => {
      for (const client of wss.clients) client.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A port that accepts connections and resets them at once (ECONNRESET before any answer). */
async function startResetter(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let accepted = 0
  const server = createTcpServer((socket: Socket) => {
    accepted++
    socket.on('error', () => {})
    socket.resetAndDestroy()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

let a: Instance
let b: Instance
let c: Instance
let dead: { host: string; port: number }
let resetter: Awaited<ReturnType<typeof startResetter>>
let backend: TestBackend
let edge: TestEdge
const inflight = new InflightRequests()

const host = (deployment: string): string => `${deployment}.acme.localhost:${edge.port}`
const keyOf = (target: { host: string; port: number }): string => InflightRequests.key(target.host, target.port)
const json = (text: string): { name: string; method: string; url: string; headers: Record<string, string>; body: string } => JSON.parse(text)
const countsOf = (instances: Instance[], from: number[]): number[] => instances.map((instance, i) => instance.hits.length - (from[i] as number))

/** Every counted address, back to 0 (within a second: a visitor's close reaches the edge a moment later). */
async function expectAllIdle(): Promise<void> {
  const keys = [a, b, c].map((i) => keyOf(i.target)).concat(keyOf(dead), keyOf({ host: '127.0.0.1', port: resetter.port }))
  const deadline = Date.now() + 1000
  while (keys.some((key) => inflight.count(key) !== 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  expect(Object.fromEntries(keys.map((key) => [key, inflight.count(key)]))).toEqual(Object.fromEntries(keys.map((key) => [key, 0])))
}

beforeAll(async () => {
  ;[a, b, c] = await Promise.all([startInstance('a'), startInstance('b'), startInstance('c')])
  dead = { host: '127.0.0.1', port: await closedPort() }
  resetter = await startResetter()
  backend = new TestBackend()
  backend.brandings.set('wsp_brand', { accent_color: '#ff6600' })
  const app = (slug: string, targets: { host: string; port: number }[], workspaceId = 'wsp_1'): void => {
    const added = backend.addApp({ deploymentSlug: slug, workspaceSlug: 'acme', sha256: 'f'.repeat(64), kind: 'dynamic', workspaceId })
    backend.targets.set(added.deploymentId, targets)
  }
  app('web', [a.target, b.target, c.target])
  app('flaky', [dead, a.target, b.target])
  app('reset', [{ host: '127.0.0.1', port: resetter.port }, c.target])
  app('post', [dead, a.target])
  app('lone', [dead], 'wsp_brand')
  app('down', [], 'wsp_brand')
  edge = await startEdge(backend, { resolveCacheMs: 1000, inflight })
})

afterAll(async () => {
  await edge?.close()
  await Promise.all([a?.close(), b?.close(), c?.close(), resetter?.close()])
})

describe('balancing', () => {
  it('spreads sequential requests over every instance, with the X-Forwarded headers', async () => {
    const from = [a, b, c].map((i) => i.hits.length)
    for (let i = 0; i < 9; i++) {
      const r = await call(edge.port, host('web'), `/hello?i=${i}`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
      expect(r.status).toBe(200)
      const seen = json(r.text)
      expect(seen.url).toBe(`/hello?i=${i}`)
      expect(seen.headers.host).toBe(host('web'))
      expect(seen.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
      expect(seen.headers['x-forwarded-proto']).toBe('http')
      expect(seen.headers['x-forwarded-host']).toBe(host('web'))
    }
    // Nothing in flight between sequential requests: all tie, and they take turns.
    expect(countsOf([a, b, c], from)).toEqual([3, 3, 3])
    await expectAllIdle()
  })

  it('sends the next requests elsewhere while one instance is busy (least connections)', async () => {
    const before = [a, b, c].map((i) => i.slow.length)
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/slow', headers: { host: host('web') } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    await once(res, 'data')
    const busy = [a, b, c].find((instance, i) => instance.slow.length > (before[i] as number)) as Instance
    expect(inflight.count(keyOf(busy.target))).toBe(1)
    const others = [a, b, c].filter((instance) => instance !== busy)
    const from = others.map((i) => i.hits.length)
    const busyFrom = busy.hits.length
    for (let i = 0; i < 6; i++) expect((await call(edge.port, host('web'), '/')).status).toBe(200)
    expect(busy.hits.length).toBe(busyFrom)
    expect(countsOf(others, from)).toEqual([3, 3])
    let rest = ''
    res.on('data', (chunk: Buffer) => (rest += chunk.toString()))
    busy.finishSlow()
    await once(res, 'end')
    expect(rest).toBe('last')
    await expectAllIdle()
  })
})

describe('failures', () => {
  it('retries idempotent requests once on another instance when one refuses connections', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await call(edge.port, host('flaky'), '/')
      expect(r.status, `GET ${i}`).toBe(200)
      expect(['a', 'b']).toContain(json(r.text).name)
    }
    for (const method of ['HEAD', 'OPTIONS', 'PUT', 'DELETE']) {
      for (let i = 0; i < 3; i++) {
        const r = await call(edge.port, host('flaky'), '/', { method })
        expect(r.status, `${method} ${i}`).toBe(200)
        expect(r.headers['x-instance']).toMatch(/^[ab]$/)
      }
    }
    await expectAllIdle()
  })

  it('waits for targets being read, and retries on what is known meanwhile (requests and WebSockets)', async () => {
    const flaky = backend.apps.find((app) => app.deploymentSlug === 'flaky') as AppSite
    backend.readFirst.add(flaky.deploymentId)
    try {
      for (let i = 0; i < 4; i++) {
        const r = await call(edge.port, host('flaky'), '/')
        expect(r.status, `GET ${i}`).toBe(200)
        expect(['a', 'b']).toContain(json(r.text).name)
      }
      const ws = new WebSocket(`ws://127.0.0.1:${edge.port}/live`, { headers: { host: host('flaky') } })
      await once(ws, 'open')
      ws.send('ping')
      const [message] = (await once(ws, 'message')) as [Buffer]
      expect(['a: ping', 'b: ping']).toContain(message.toString())
      ws.close()
      await once(ws, 'close')
    } finally {
      backend.readFirst.delete(flaky.deploymentId)
    }
    await expectAllIdle()
  })

  it('retries on another instance when one resets the connection before answering', async () => {
    const accepted = resetter.accepted()
    for (let i = 0; i < 4; i++) {
      const r = await call(edge.port, host('reset'), '/')
      expect(r.status).toBe(200)
      expect(json(r.text).name).toBe('c')
    }
    expect(resetter.accepted() - accepted).toBeGreaterThan(0)
    await expectAllIdle()
  })

  it('answers a POST that reached a dead instance with a 502, never sending it twice', async () => {
    const from = a.hits.filter((h) => h.startsWith('POST')).length
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const r = await call(edge.port, host('post'), '/submit', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `n=${i}` })
      statuses.push(r.status)
      if (r.status === 502) {
        expect(r.text).toContain('did not answer')
        expect(r.text).not.toContain('127.0.0.1')
        expect(r.text).not.toContain(String(dead.port))
      } else expect(json(r.text)).toMatchObject({ name: 'a', method: 'POST', body: `n=${i}` })
    }
    // Sequential requests take turns: two to the dead instance (502), two to a.
    expect([...statuses].sort()).toEqual([200, 200, 502, 502])
    expect(a.hits.filter((h) => h.startsWith('POST')).length - from).toBe(2)
    // A PUT with a body is not retried either.
    const puts = [await call(edge.port, host('post'), '/', { method: 'PUT', body: 'x' }), await call(edge.port, host('post'), '/', { method: 'PUT', body: 'x' })]
    expect(puts.map((r) => r.status).sort()).toEqual([200, 502])
    await expectAllIdle()
  })

  it('retries once on a new connection when the only instance closed a kept-alive one', async () => {
    // Answers each connection's first request, then closes the connection as the second arrives.
    const raw = await startRawUpstream((socket, _request, n) => {
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      else socket.destroy()
    })
    try {
      const app = backend.addApp({ deploymentSlug: 'single', workspaceSlug: 'acme', sha256: 'f'.repeat(64), kind: 'dynamic' })
      backend.targets.set(app.deploymentId, [{ host: '127.0.0.1', port: raw.port }])
      for (let i = 0; i < 3; i++) {
        const r = await call(edge.port, host('single'), '/')
        expect(r.status, `GET ${i}`).toBe(200)
        expect(r.text).toBe('ok')
      }
      expect(raw.connections()).toBe(3)
      expect(inflight.count(InflightRequests.key('127.0.0.1', raw.port))).toBe(0)
      // A POST on a reused connection that closes is not sent again.
      const post = await call(edge.port, host('single'), '/', { method: 'POST', body: 'once' })
      expect(post.status).toBe(502)
      expect(raw.requests.filter((r) => r.head.startsWith('POST'))).toHaveLength(1)
      expect(inflight.count(InflightRequests.key('127.0.0.1', raw.port))).toBe(0)
    } finally {
      await raw.close()
    }
  })

  it('answers with a branded 502 when no instance can be reached, without its address', async () => {
    const r = await call(edge.port, host('lone'), '/')
    expect(r.status).toBe(502)
    expect(r.text).toContain('#ff6600')
    expect(r.text).not.toContain(`${dead.port}`)
    expect(r.text).not.toContain('127.0.0.1')
    await expectAllIdle()
  })

  it('answers 503 with Retry-After while no instance is ready', async () => {
    const r = await call(edge.port, host('down'), '/')
    expect(r.status).toBe(503)
    expect(r.headers['retry-after']).toBe('2')
    expect(r.text).toContain('Starting')
    expect(r.text).toContain('#ff6600')
    const j = await call(edge.port, host('down'), '/', { headers: { accept: 'application/json' } })
    expect(j.status).toBe(503)
    expect(JSON.parse(j.text)).toEqual({ error: { code: 'unavailable', message: expect.stringContaining('No instance') } })
    const head = await call(edge.port, host('down'), '/', { method: 'HEAD' })
    expect(head.status).toBe(503)
    expect(head.text).toBe('')
  })

  it('follows the targets as instances come and go', async () => {
    const web = backend.apps.find((app) => app.deploymentSlug === 'web')?.deploymentId as string
    backend.targets.set(web, [])
    expect((await call(edge.port, host('web'), '/')).status).toBe(503)
    backend.targets.set(web, [b.target])
    for (let i = 0; i < 3; i++) expect(json((await call(edge.port, host('web'), '/')).text).name).toBe('b')
    backend.targets.set(web, [a.target, b.target, c.target])
  })
})

describe('streams', () => {
  it('delivers server-sent events as they come, counted in flight until the stream ends', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/sse', headers: { host: host('web'), accept: 'text/event-stream' } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    expect(res.headers['content-type']).toBe('text/event-stream')
    const [first] = (await once(res, 'data')) as [Buffer]
    const name = /one from (\w)/.exec(first.toString())?.[1]
    const instance = [a, b, c].find((i) => i.name === name) as Instance
    expect(inflight.count(keyOf(instance.target))).toBe(1)
    let rest = ''
    res.on('data', (chunk: Buffer) => (rest += chunk.toString()))
    instance.nextEvent()
    await once(res, 'end')
    expect(rest).toBe(`data: two from ${name}\n\n`)
    await expectAllIdle()
  })

  it('streams a large POST body to the instance intact', async () => {
    const body = randomBytes(4 * 1024 * 1024)
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/hash', method: 'POST', headers: { host: host('web'), 'transfer-encoding': 'chunked' } })
    for (let at = 0; at < body.length; at += 256 * 1024) {
      if (!req.write(body.subarray(at, at + 256 * 1024))) await once(req, 'drain')
    }
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    const chunks: Buffer[] = []
    for await (const chunk of res) chunks.push(chunk as Buffer)
    expect(res.statusCode).toBe(200)
    const seen = JSON.parse(Buffer.concat(chunks).toString()) as { bytes: number; sha256: string }
    expect(seen.bytes).toBe(body.length)
    expect(seen.sha256).toBe(createHash('sha256').update(body).digest('hex'))
    await expectAllIdle()
  })

  it('stops counting a request when the visitor goes away mid-response', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/slow', headers: { host: host('web') } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    await once(res, 'data')
    const busy = [a, b, c].find((i) => i.slow.length > 0) as Instance
    expect(inflight.count(keyOf(busy.target))).toBe(1)
    req.destroy()
    await busy.slowClosed()
    busy.slow.splice(0)
    await expectAllIdle()
  })

  it('stops counting a request when the visitor goes away before any answer', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/hang', headers: { host: host('web') } })
    req.on('error', () => {})
    req.end()
    const deadline = Date.now() + 1000
    const busy = (): Instance | undefined => [a, b, c].find((i) => inflight.count(keyOf(i.target)) > 0)
    while (busy() === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    const instance = busy() as Instance
    while (instance.hits.at(-1) !== 'GET /hang' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(inflight.count(keyOf(instance.target))).toBe(1)
    const closed = instance.hangClosed()
    req.destroy()
    await closed
    await expectAllIdle()
  })

  it('stops counting a request when the instance dies mid-response, and cuts the response short', async () => {
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/die', headers: { host: host('web') } })
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
    await expectAllIdle()
  })
})

describe('WebSockets', () => {
  const open = (h: string): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${edge.port}/live`, { headers: { host: h } })
      ws.once('open', () => resolve(ws))
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
      ws.once('error', reject)
    })

  it('echoes through the edge, counted in flight until closed', async () => {
    const ws = await open(host('web'))
    ws.send('ping')
    const [message] = (await once(ws, 'message')) as [Buffer]
    const [name, text] = message.toString().split(': ')
    expect(text).toBe('ping')
    const instance = [a, b, c].find((i) => i.name === name) as Instance
    expect(inflight.count(keyOf(instance.target))).toBe(1)
    ws.close()
    await once(ws, 'close')
    await expectAllIdle()
  })

  it('goes to another instance when one cannot be reached, and refuses when none is ready', async () => {
    for (let i = 0; i < 3; i++) {
      const ws = await open(host('flaky'))
      ws.send('hi')
      const [message] = (await once(ws, 'message')) as [Buffer]
      expect(message.toString()).toMatch(/^[ab]: hi$/)
      ws.close()
      await once(ws, 'close')
    }
    await expect(open(host('down'))).rejects.toThrow('HTTP 503')
    await expect(open(host('lone'))).rejects.toThrow('HTTP 502')
    await expect(open(host('nothing'))).rejects.toThrow('HTTP 404')
    await expectAllIdle()
  })
})

describe('in-flight counts', () => {
  it('balance a concurrent burst and come back to 0', async () => {
    const from = [a, b, c].map((i) => i.hits.length)
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => call(edge.port, host('web'), `/burst/${i}`)))
    expect(replies.every((r) => r.status === 200)).toBe(true)
    for (const n of countsOf([a, b, c], from)) expect(n).toBeGreaterThanOrEqual(15)
    const flaky = await Promise.all(Array.from({ length: 30 }, () => call(edge.port, host('flaky'), '/')))
    expect(flaky.every((r) => r.status === 200)).toBe(true)
    await expectAllIdle()
  })

  it('are back to 0 for every instance after all of the above', async () => {
    await expectAllIdle()
  })
})
