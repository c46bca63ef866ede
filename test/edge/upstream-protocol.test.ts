import { once } from 'node:events'
import { request } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestBackend, call, startEdge, startRawUpstream } from './fixtures.js'
import type { RawUpstream, TestEdge } from './fixtures.js'

// The edge's own HTTP/1.1 client (upstream-pool.ts) against upstreams that answer in ways
// node's http server never would: split chunks, interim responses, early answers, junk.

let edge: TestEdge
let backend: TestBackend
const upstreams: RawUpstream[] = []
let sites = 0

beforeAll(async () => {
  backend = new TestBackend()
  edge = await startEdge(backend)
})

afterAll(async () => {
  await edge?.close()
  await Promise.all(upstreams.map((u) => u.close()))
})

/** A raw upstream behind its own public site; returns it and the site's Host. */
async function behind(answer: Parameters<typeof startRawUpstream>[0]): Promise<{ up: RawUpstream; host: string }> {
  const up = await startRawUpstream(answer)
  upstreams.push(up)
  const slug = `raw${++sites}`
  backend.add({ slug, public: true, target: { host: '127.0.0.1', port: up.port } })
  return { up, host: `3000-${slug}.sandbox.localhost:${edge.port}` }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const pathOf = (head: string): string => head.split(' ')[1] ?? ''

async function writeSlowly(socket: Socket, text: string, piece = 1): Promise<void> {
  for (let i = 0; i < text.length; i += piece) {
    socket.write(text.slice(i, i + piece))
    await sleep(1)
  }
}

function ok(body: string): string {
  return `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

describe('the edge as an HTTP/1.1 client', () => {
  it('decodes a chunked response however it is split, and keeps the connection', async () => {
    const { up, host } = await behind(async (socket) => {
      await writeSlowly(socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n')
    })
    const r = await call(edge.port, host, '/')
    expect(r.status).toBe(200)
    expect(r.text).toBe('hello, world')
    expect(r.headers['x-trailer']).toBeUndefined()
    const again = await call(edge.port, host, '/')
    expect(again.text).toBe('hello, world')
    expect(up.connections()).toBe(1)
  })

  it('reads a body delimited by the end of the connection, and does not reuse it', async () => {
    const { up, host } = await behind(async (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ')
      await sleep(20)
      socket.end('part two')
    })
    expect((await call(edge.port, host, '/')).text).toBe('part one, part two')
    expect((await call(edge.port, host, '/')).text).toBe('part one, part two')
    expect(up.connections()).toBe(2)
  })

  it('knows HEAD, 204 and 304 responses have no body', async () => {
    const { up, host } = await behind((socket, req) => {
      const path = pathOf(req.head)
      if (req.head.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n')
      else if (path === '/204') socket.write('HTTP/1.1 204 No Content\r\n\r\n')
      else if (path === '/304') socket.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 99\r\n\r\n')
      else socket.write(ok('after'))
    })
    const head = await call(edge.port, host, '/', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers['content-length']).toBe('10')
    expect((await call(edge.port, host, '/204')).status).toBe(204)
    const notModified = await call(edge.port, host, '/304')
    expect(notModified.status).toBe(304)
    expect(notModified.headers.etag).toBe('"v1"')
    expect((await call(edge.port, host, '/')).text).toBe('after')
    expect(up.connections()).toBe(1)
  })

  it('skips interim responses', async () => {
    const { host } = await behind((socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n' + ok('final'))
    })
    const r = await call(edge.port, host, '/')
    expect(r.status).toBe(200)
    expect(r.text).toBe('final')
  })

  it('answers 502 for a response it cannot read', async () => {
    const cases: Record<string, string> = {
      '/junk': 'garbage\r\n\r\n',
      '/length': 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n',
      '/lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
      '/control': 'HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\nok',
      '/status': 'HTTP/1.1 99 Odd\r\n\r\n',
      '/fold': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded: x\r\n\r\nok',
      '/switch': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
      '/huge': `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
      '/nothing': '',
    }
    const { host } = await behind((socket, req) => {
      const answer = cases[pathOf(req.head)] ?? ok('?')
      if (answer === '') socket.destroy()
      else socket.write(answer)
    })
    for (const path of Object.keys(cases)) {
      const r = await call(edge.port, host, path)
      expect(r.status, path).toBe(502)
      expect(r.text, path).toContain('did not answer')
    }
  })

  it('cuts the visitor off when a chunked body breaks after the head went out', async () => {
    const { host } = await behind(async (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
      await sleep(20)
      socket.write('zz\r\n')
    })
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/', headers: { host } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    expect(res.statusCode).toBe(200)
    res.resume()
    const outcome = await new Promise<string>((resolve) => {
      res.on('end', () => resolve('end'))
      res.on('error', () => resolve('error'))
    })
    expect(outcome).toBe('error')
  })

  it('lets Transfer-Encoding win over Content-Length', async () => {
    const { host } = await behind((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n')
    })
    const r = await call(edge.port, host, '/')
    expect(r.text).toBe('ok')
    expect(r.headers['content-length']).toBeUndefined()
  })

  it('does not keep an HTTP/1.0 or `Connection: close` connection', async () => {
    const { up, host } = await behind((socket, req) => {
      if (pathOf(req.head) === '/old') socket.write('HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold')
      else socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose')
    })
    expect((await call(edge.port, host, '/old')).text).toBe('old')
    expect((await call(edge.port, host, '/close')).text).toBe('close')
    expect((await call(edge.port, host, '/old')).text).toBe('old')
    expect(up.connections()).toBe(3)
  })

  it('drops a connection the upstream closed while idle', async () => {
    const { up, host } = await behind((socket) => {
      socket.write(ok('fine'))
      setTimeout(() => socket.end(), 20)
    })
    expect((await call(edge.port, host, '/')).text).toBe('fine')
    await sleep(100)
    expect((await call(edge.port, host, '/')).text).toBe('fine')
    expect(up.connections()).toBe(2)
  })

  it('sends a GET again on a new connection when a reused one dies unanswered, but never a POST', async () => {
    const { up, host } = await behind((socket, _req, n) => {
      if (n === 2) socket.destroy()
      else socket.write(ok(`answer ${n}`))
    })
    expect((await call(edge.port, host, '/')).text).toBe('answer 1')
    expect((await call(edge.port, host, '/')).text).toBe('answer 1') // retried on a second connection
    expect(up.connections()).toBe(2)
    expect((await call(edge.port, host, '/', { method: 'POST', body: 'data' })).status).toBe(502)
  })

  it('takes an answer that comes before the whole request body', async () => {
    const { up, host } = await behind((socket) => {
      socket.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!')
    })
    const r = await call(edge.port, host, '/upload', { method: 'POST', body: 'x'.repeat(4 * 1024 * 1024) })
    expect(r.status).toBe(413)
    expect(r.text).toBe('too big!')
    expect((await call(edge.port, host, '/')).status).toBe(413)
    expect(up.connections()).toBe(2)
  })

  it('sends a body of unknown length chunked', async () => {
    const { up, host } = await behind(async (socket, req) => {
      while (!req.rest.includes('0\r\n\r\n')) await sleep(5)
      socket.write(ok('got it'))
    })
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/', method: 'POST', headers: { host, 'transfer-encoding': 'chunked' } })
    req.write('hello')
    await sleep(20)
    req.end(' world')
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    res.resume()
    await once(res, 'end')
    expect(res.statusCode).toBe(200)
    const seen = up.requests[0]!
    expect(seen.head.toLowerCase()).toContain('transfer-encoding: chunked')
    expect(seen.head.toLowerCase()).not.toContain('content-length')
    expect(dechunk(seen.rest.toString('latin1'))).toBe('hello world')
  })

  it('sends a body of known length as it is, and drops headers that Connection lists', async () => {
    const { up, host } = await behind(async (socket, req) => {
      while (req.rest.length < 11) await sleep(5)
      socket.write(ok('done'))
    })
    const r = await call(edge.port, host, '/', { method: 'PUT', body: 'hello world', headers: { connection: 'keep-alive, X-Private', 'x-private': 'secret', 'x-public': 'yes' } })
    expect(r.text).toBe('done')
    const seen = up.requests[0]!
    expect(seen.head.toLowerCase()).toContain('content-length: 11')
    expect(seen.head.toLowerCase()).toContain('x-public: yes')
    expect(seen.head.toLowerCase()).not.toContain('x-private')
    expect(seen.rest.toString()).toBe('hello world')
  })

  it('passes header bytes through unchanged both ways', async () => {
    const { up, host } = await behind((socket) => {
      socket.write(Buffer.from('HTTP/1.1 200 OK\r\nX-Reply: na\u00efve\r\nContent-Length: 2\r\n\r\nok', 'latin1'))
    })
    const r = await call(edge.port, host, '/', { headers: { 'x-name': 'caf\u00e9' } })
    expect(r.headers['x-reply']).toBe('na\u00efve')
    expect(up.requests[0]!.head).toContain('x-name: caf\u00e9')
  })

  it('holds back a large response for a slow reader and delivers all of it', async () => {
    const size = 16 * 1024 * 1024
    const { host } = await behind((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`)
      const block = Buffer.alloc(1024 * 1024, 0x61)
      for (let i = 0; i < 16; i++) socket.write(block)
    })
    const req = request({ host: '127.0.0.1', port: edge.port, path: '/', headers: { host } })
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    res.pause()
    await sleep(200)
    let received = 0
    res.on('data', (chunk: Buffer) => (received += chunk.length))
    res.resume()
    await once(res, 'end')
    expect(received).toBe(size)
  })
})

function dechunk(raw: string): string {
  let out = ''
  let at = 0
  for (;;) {
    const nl = raw.indexOf('\r\n', at)
    const size = Number.parseInt(raw.slice(at, nl), 16)
    if (size === 0) return out
    out += raw.slice(nl + 2, nl + 2 + size)
    at = nl + 2 + size + 2
  }
}
