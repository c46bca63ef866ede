import type { IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { WebSocket, WebSocketServer } from 'ws'
import { MiosaError } from '../core/errors.js'
import type { Services } from '../core/services.js'
import { errorBody, STATUS } from './error-handler.js'
import { authorize, parseParams, parseQuery } from './request-context.js'
import type { AnySocketRoute, SocketContext } from './route.js'

// WebSocket routes (exec with stdin, terminals) on the API listener's own `upgrade`
// event. An upgrade is authenticated and validated exactly like an HTTP request, and is
// refused with an ordinary HTTP error response (401, 403, 404, 400, …) before anything
// is upgraded; only a request that passed every check becomes a WebSocket.

const MAX_FRAME_BYTES = 8 * 1024 * 1024
const HEARTBEAT_MS = 30_000

interface Matcher {
  route: AnySocketRoute
  pattern: RegExp
  names: string[]
}

export interface WebSocketOptions {
  services: Services
  prefixes: readonly string[]
  requestId: (req: IncomingMessage) => string
}

export function attachWebSockets(app: FastifyInstance, routes: readonly AnySocketRoute[], options: WebSocketOptions): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, clientTracking: true })
  const shutdown = new AbortController()
  const matchers: Matcher[] = options.prefixes.flatMap((prefix) => routes.map((route) => compile(prefix, route)))

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(req, socket, head)
  })

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const requestId = options.requestId(req)
    const log = app.log.child({ request_id: requestId })
    socket.on('error', () => socket.destroy())
    const url = new URL(req.url ?? '/', 'http://upgrade.invalid')
    try {
      if (shutdown.signal.aborted) throw new MiosaError('unavailable', 'the server is shutting down')
      const found = match(matchers, url.pathname)
      if (found === undefined) throw new MiosaError('not_found', `no WebSocket route ${url.pathname}`)
      if (req.method !== 'GET') throw new MiosaError('invalid', 'a WebSocket upgrade is a GET request')
      const { route, params } = found
      const who = await authorize(route, req.headers, options.services)
      const ctx: SocketContext<unknown, unknown> = {
        ...who,
        params: parseParams(route, params),
        query: parseQuery(route, Object.fromEntries(url.searchParams)),
        body: undefined,
        services: options.services,
        signal: shutdown.signal,
        log,
        requestId,
      }
      await route.check(ctx)
      const session = await route.open(ctx)
      if (socket.destroyed || !socket.writable) {
        session.cancel()
        return
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const started = Date.now()
        log.info({ route: route.path, url: url.pathname }, 'websocket opened')
        ws.once('close', (code) => log.info({ route: route.path, code, duration_ms: Date.now() - started }, 'websocket closed'))
        heartbeat(ws)
        session.attach(ws)
      })
    } catch (error) {
      refuse(socket, error, requestId, log)
    }
  }

  // Open sockets would hold the listener open: closing the server closes them (1001 going away).
  app.addHook('preClose', async () => {
    shutdown.abort()
    for (const ws of wss.clients) ws.close(1001, 'server shutting down')
    setTimeout(() => {
      for (const ws of wss.clients) ws.terminate()
    }, 1000).unref()
  })
}

function compile(prefix: string, route: AnySocketRoute): Matcher {
  const names: string[] = []
  const source = `${prefix}${route.path}`.replace(/:([a-z_]+)/g, (_, name: string) => {
    names.push(name)
    return '([^/]+)'
  })
  return { route, pattern: new RegExp(`^${source}/?$`), names }
}

function match(matchers: readonly Matcher[], pathname: string): { route: AnySocketRoute; params: Record<string, string> } | undefined {
  for (const m of matchers) {
    const found = m.pattern.exec(pathname)
    if (found === null) continue
    const params: Record<string, string> = {}
    m.names.forEach((name, i) => (params[name] = decodeURIComponent(found[i + 1] ?? '')))
    return { route: m.route, params }
  }
  return undefined
}

/** An ordinary HTTP error response on the raw socket, in the house format; nothing was upgraded. */
function refuse(socket: Duplex, error: unknown, requestId: string, log: FastifyBaseLogger): void {
  let known = error instanceof MiosaError ? error : undefined
  if (known === undefined || known.code === 'internal') {
    log.error({ err: error }, 'websocket upgrade failed')
    known = new MiosaError('internal', `internal error; quote request id ${requestId} when reporting it`)
  }
  const status = STATUS[known.code]
  const body = JSON.stringify(errorBody(known, requestId))
  if (socket.destroyed || !socket.writable) return
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  )
}

/** Pings keep idle connections alive through proxies; a peer that stops answering is dropped. */
function heartbeat(ws: WebSocket): void {
  let alive = true
  ws.on('pong', () => (alive = true))
  const timer = setInterval(() => {
    if (!alive) {
      ws.terminate()
      return
    }
    alive = false
    if (ws.readyState === WebSocket.OPEN) ws.ping()
  }, HEARTBEAT_MS)
  timer.unref()
  ws.once('close', () => clearInterval(timer))
}
