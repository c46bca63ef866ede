import { once } from 'node:events'
import { createServer, request } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import type { Logger } from 'pino'
import { WebSocketServer } from 'ws'
import { MiosaError } from '../../src/core/errors.js'
import type { InflightRequests } from '../../src/core/inflight.js'
import type { RateLimiter } from '../../src/core/rate-limiter.js'
import type { AccessGrant, AccessRefusal, AppRoute, AppSite, EdgeBackend, HostRoute, PreviewSite } from '../../src/edge/edge-backend.js'
import { createEdgeServer } from '../../src/edge/edge-server.js'
import type { Branding } from '../../src/edge/error-page.js'

// What the edge tests run against: a real upstream on loopback (echo, streams, event
// stream, WebSocket echo) and a small EdgeBackend over in-memory maps. The platform's
// own backend runs the same edge in the e2e tests.

export interface Upstream {
  server: Server
  port: number
  /** Connections the upstream accepted (keep-alive reuse shows as few). */
  connections: () => number
  /** Releases the second event of /sse. */
  releaseEvent: () => void
  /** Resolves when the request to /slow is closed by the edge. */
  slowClosed: Promise<void>
  upgrades: IncomingHttpHeaders[]
  close: () => Promise<void>
}

export async function startUpstream(): Promise<Upstream> {
  let connections = 0
  let releaseEvent!: () => void
  const released = new Promise<void>((resolve) => (releaseEvent = resolve))
  let slowClosedResolve!: () => void
  const slowClosed = new Promise<void>((resolve) => (slowClosedResolve = resolve))
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.write('data: one\n\n')
      void released.then(() => res.end('data: two\n\n'))
      return
    }
    if (path === '/stream') {
      // Echoes the request body as it arrives, before it has ended.
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      req.pipe(res)
      return
    }
    if (path === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first')
      req.socket.once('close', slowClosedResolve)
      return
    }
    if (path === '/die') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
      res.write('partial')
      setTimeout(() => res.socket?.destroy(), 20)
      return
    }
    if (path === '/hop') {
      res.setHeader('Connection', 'keep-alive, X-Up-Hop')
      res.setHeader('X-Up-Hop', 'secret')
      res.setHeader('Keep-Alive', 'timeout=99')
      res.setHeader('Proxy-Authenticate', 'Basic')
      res.setHeader('Set-Cookie', ['a=1', 'b=2'])
      res.end('hop')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, headers: req.headers, body: Buffer.concat(chunks).toString() })
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' })
      res.end(body)
    })
  })
  server.on('connection', () => connections++)
  const upgrades: IncomingHttpHeaders[] = []
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers)
    ws.on('message', (data, binary) => ws.send(binary ? data : `echo: ${String(data)}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    releaseEvent,
    slowClosed,
    upgrades,
    close: async () => {
      for (const client of wss.clients) client.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface TestSite extends PreviewSite {
  slug: string
  target?: { host: string; port: number }
  /** upstream() throws this. */
  failure?: MiosaError
}

export const TENANT_DOMAIN = 'preview.example.com'
export const PASSWORD = 'hunter2'

/** Tokens: mp_good and ms_open grant; ms_pw needs PASSWORD (three wrong guesses: 429); anything else is refused. */
export class TestBackend implements EdgeBackend {
  readonly sites: TestSite[] = []
  readonly brandings = new Map<string, Branding>()
  readonly domainBrandings = new Map<string, Branding>()
  readonly touched: string[] = []
  readonly exchanges: { token: string; password: string | undefined; clientIp: string }[] = []
  activeHolds = 0
  totalHolds = 0
  wrongGuesses = 0
  readonly revoked = new Set<string>()
  readonly apps: (AppSite & AppRoute)[] = []
  /** What releaseFiles() answers with (the static tests use the real createReleaseFiles); unset: unavailable. */
  releaseFilesOf: ((sha256: string) => Promise<string>) | undefined
  resolveAppCalls = 0
  /** The instance addresses appTargets() answers, by deployment id. */
  readonly targets = new Map<string, { host: string; port: number }[]>()

  /** Deployments whose targets are always read first (a promise), as a store-backed backend answers a cache miss. */
  readonly readFirst = new Set<string>()

  appTargets(app: AppSite): readonly { host: string; port: number }[] | Promise<readonly { host: string; port: number }[]> {
    const targets = this.targets.get(app.deploymentId) ?? []
    return this.readFirst.has(app.deploymentId) ? new Promise((resolve) => setTimeout(() => resolve(targets), 5)) : targets
  }

  knownAppTargets(app: AppSite): readonly { host: string; port: number }[] {
    return this.targets.get(app.deploymentId) ?? []
  }

  addApp(app: Partial<AppSite> & AppRoute & { sha256: string; kind?: 'static' | 'dynamic' }): AppSite & AppRoute {
    const { sha256, kind, ...rest } = app
    const full: AppSite & AppRoute = {
      deploymentId: `dpl_${app.deploymentSlug}`,
      workspaceId: 'wsp_1',
      environment: 'production',
      versionId: `ver_${app.deploymentSlug}_1`,
      spaFallback: false,
      release: { sha256, kind: kind ?? 'static' },
      ...rest,
    }
    this.apps.push(full)
    return full
  }

  add(site: Partial<TestSite> & { slug: string }): TestSite {
    const full: TestSite = {
      sandboxId: `sbx_${site.slug}`,
      organizationId: 'org_1',
      workspaceId: 'wsp_1',
      port: 3000,
      public: false,
      ...site,
    }
    this.sites.push(full)
    return full
  }

  async resolve(route: HostRoute): Promise<PreviewSite | undefined> {
    if (route.tenantDomain !== undefined && route.tenantDomain !== TENANT_DOMAIN) return undefined
    return this.sites.find((s) => s.slug === route.slug && s.port === (route.port ?? 3000))
  }

  async resolveApp(route: AppRoute): Promise<AppSite | undefined> {
    this.resolveAppCalls++
    return this.apps.find((a) => a.deploymentSlug === route.deploymentSlug && a.workspaceSlug === route.workspaceSlug)
  }

  async releaseFiles(sha256: string): Promise<string> {
    if (this.releaseFilesOf === undefined) throw new MiosaError('unavailable', 'no release files in this test')
    return this.releaseFilesOf(sha256)
  }

  async exchange(site: PreviewSite, token: string, o: { password?: string | undefined; clientIp: string }): Promise<AccessGrant | AccessRefusal> {
    this.exchanges.push({ token, password: o.password, clientIp: o.clientIp })
    if (token === 'mp_good') return { ok: true, cookie: `c.${site.sandboxId}.mp`, maxAgeSeconds: 600 }
    if (token === 'ms_pw') {
      if (this.wrongGuesses >= 3) return { ok: false, status: 429, message: 'Too many wrong passwords. Try again later.' }
      if (o.password === undefined) return { ok: false, status: 401, message: 'Enter the password of this link.', passwordRequired: true }
      if (o.password !== PASSWORD) {
        this.wrongGuesses++
        return { ok: false, status: 401, message: 'Wrong password.', passwordRequired: true }
      }
      return { ok: true, cookie: `c.${site.sandboxId}.ms`, maxAgeSeconds: 3600 }
    }
    return { ok: false, status: 401, message: 'This preview link has expired or is not valid. Ask for a new link.' }
  }

  async admits(site: PreviewSite, cookie: string): Promise<boolean> {
    return cookie.startsWith(`c.${site.sandboxId}.`) && !this.revoked.has(cookie)
  }

  async upstream(site: PreviewSite): Promise<{ host: string; port: number }> {
    const s = site as TestSite
    if (s.failure !== undefined) throw s.failure
    if (s.target === undefined) throw new MiosaError('not_found', 'no target')
    return s.target
  }

  touch(sandboxId: string): void {
    this.touched.push(sandboxId)
  }

  hold(_sandboxId: string): () => void {
    this.activeHolds++
    this.totalHolds++
    let released = false
    return () => {
      if (released) return
      released = true
      this.activeHolds--
    }
  }

  async branding(of: { workspaceId: string } | { tenantDomain: string }): Promise<Branding | undefined> {
    return 'workspaceId' in of ? this.brandings.get(of.workspaceId) : this.domainBrandings.get(of.tenantDomain)
  }
}

export interface TestEdge {
  server: Server
  port: number
  logs: () => string
  close: () => Promise<void>
}

export async function startEdge(
  backend: EdgeBackend,
  options: { resolveCacheMs?: number; inflight?: InflightRequests; hostLimiter?: RateLimiter } = {},
): Promise<TestEdge> {
  let logs = ''
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs += chunk.toString()
      callback()
    },
  })
  const logger: Logger = pino({ level: 'debug' }, sink)
  const server = createEdgeServer({ logger, baseDomain: 'localhost', backend, resolveCacheMs: options.resolveCacheMs ?? 0, inflight: options.inflight, hostLimiter: options.hostLimiter })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    server,
    port: (server.address() as AddressInfo).port,
    logs: () => logs,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  text: string
}

/** One request to the edge on loopback, under any Host. */
export function call(
  edgePort: number,
  host: string,
  path: string,
  o: { method?: string; headers?: Record<string, string | string[]>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: edgePort, path, method: o.method ?? 'GET', headers: { host, ...o.headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, text: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

export interface RawUpstream {
  port: number
  /** Connections accepted so far. */
  connections: () => number
  /** Every request received: its head (request line and headers) and the bytes after it. */
  requests: { head: string; rest: Buffer }[]
  close: () => Promise<void>
}

/**
 * A TCP server that answers each request head with whatever `answer` writes: for protocol
 * cases node's http server would never produce (split chunks, interim responses, junk).
 * `answer` gets the socket, the request (its body bytes keep arriving in `rest` until the
 * answer's promise settles) and its number on this connection.
 */
export async function startRawUpstream(
  answer: (socket: Socket, request: { head: string; rest: Buffer }, n: number) => void | Promise<void>,
): Promise<RawUpstream> {
  let connections = 0
  const requests: { head: string; rest: Buffer }[] = []
  const sockets = new Set<Socket>()
  const server = createTcpServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    let n = 0
    let current: { head: string; rest: Buffer } | undefined
    socket.on('data', (chunk: Buffer) => {
      if (current !== undefined) {
        current.rest = Buffer.concat([current.rest, chunk])
        return
      }
      buffered = Buffer.concat([buffered, chunk])
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      current = { head: buffered.toString('latin1', 0, end), rest: buffered.subarray(end + 4) }
      buffered = Buffer.alloc(0)
      requests.push(current)
      const request = current
      n++
      // Bodies are collected into `rest`; a new head is looked for once the answer is done.
      void Promise.resolve()
        .then(() => answer(socket, request, n))
        .finally(() => {
          current = undefined
        })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
