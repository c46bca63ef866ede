import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { InflightRequests } from '../core/inflight.js'
import { UpstreamPool } from './upstream-pool.js'
import type { OutgoingRequest, ResponseSink, UpstreamConnection, UpstreamError } from './upstream-pool.js'

export type { UpstreamError } from './upstream-pool.js'

// The edge's reverse proxy: one visitor request to one upstream, streamed both ways, over
// kept-alive connections (upstream-pool.ts). Request headers are filtered in one pass over
// the raw array against precomputed sets and written as one string; the response is
// handed on as it is parsed, a small one in a single write with its head.
//
// The Host header goes upstream as the visitor sent it (`3000-ab12cd34.sandbox.localhost`),
// as a browser talking to the dev server directly would: apps build absolute URLs and
// cookies from it. Some dev servers check it (Vite's `server.allowedHosts`, webpack's
// `allowedHosts`) and refuse names they do not know; templates must allow the preview
// domain. X-Forwarded-Host carries the same name, X-Forwarded-Proto the visitor's scheme.
//
// With `inflight`, each exchange counts as in flight to its target (`host:port`) from the
// moment its request is sent until its response ends, it fails, or the visitor leaves:
// exactly once, a retry moving the count to the new target. With `retarget`, a request
// that failed before any byte of an answer goes once to another target.

export interface ProxyTarget {
  host: string
  port: number
}

export interface ProxyHooks<C> {
  /** The upstream could not be reached, or failed before its response began: answer `res`. */
  onError(req: IncomingMessage, res: ServerResponse, error: UpstreamError, target: ProxyTarget, context: C): void
  /** A response that streams until closed (`text/event-stream`) began; `res` closes with it. */
  onStream?(req: IncomingMessage, res: ServerResponse, context: C): void
  /**
   * The request failed before any byte of an answer came back (refused, reset, unreachable,
   * timed out, a kept-alive connection closed): another target to send it to, once, or
   * undefined. Asked only for idempotent requests without a body (GET, HEAD, OPTIONS, PUT,
   * DELETE); without this hook (or when it answers undefined) a stale kept-alive
   * connection is still retried once on a new connection to the same target.
   */
  retarget?(req: IncomingMessage, failed: ProxyTarget, context: C): ProxyTarget | undefined
}

export interface ProxyOptions {
  /** A cookie that is the edge's own (the access cookie): removed before the request goes upstream. */
  privateCookie?: string | undefined
  /** How long connecting to an upstream may take (default 5 s). */
  connectTimeoutMs?: number | undefined
  /** How long an idle upstream connection is kept (default 4 s: below Node's 5 s server keep-alive). */
  idleTimeoutMs?: number | undefined
  /** Counts each exchange as in flight to its target while it lasts (see above); none: not counted. */
  inflight?: InflightRequests | undefined
}

// Hop-by-hop request headers (RFC 9110 7.6.1), `expect` (the edge answered it already) and
// the ones the edge sets itself.
const REQUEST_DROP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
])
// Methods sent again on a new connection when a reused one turns out closed.
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS'])
// Methods sent to another target when one failed before answering (bodiless requests only).
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

const EXCHANGE = Symbol('miosa.edge.exchange')
type Carrier<C> = { [EXCHANGE]?: Exchange<C> | undefined }

class Exchange<C> implements ResponseSink {
  conn: UpstreamConnection | undefined
  retried = false
  draining = false
  /** The in-flight key this exchange is counted under now, if counted. */
  counted: string | undefined
  constructor(
    readonly proxy: EdgeProxy<C>,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    public target: ProxyTarget,
    readonly context: C,
    readonly request: OutgoingRequest,
  ) {}

  /** No longer in flight to its target (once per dispatch, whichever way it ended). */
  settle(): void {
    const key = this.counted
    if (key === undefined) return
    this.counted = undefined
    this.proxy.inflight?.end(key)
  }

  /** The visitor went away: the upstream exchange ends with it. */
  abandon(): void {
    const conn = this.conn
    this.conn = undefined
    conn?.abandon(this)
    this.settle()
  }

  head(status: number, reason: string, headers: string[], eventStream: boolean): void {
    const res = this.res
    res.writeHead(status, reason, headers)
    if (eventStream) {
      // Events flow as they come: the head now, then every chunk as it arrives.
      res.flushHeaders()
      this.proxy.hooks.onStream?.(this.req, res, this.context)
    }
  }

  data(chunk: Buffer): boolean {
    if (this.res.destroyed) {
      this.abandon()
      return false
    }
    if (this.res.write(chunk)) return true
    if (!this.draining) {
      this.draining = true
      this.res.once('drain', onClientDrain)
    }
    return false
  }

  end(last: Buffer | undefined): void {
    this.conn = undefined
    this.settle()
    this.res.end(last)
  }

  fail(error: UpstreamError, headSent: boolean, stale: boolean, unanswered: boolean): void {
    this.conn = undefined
    this.settle()
    const res = this.res
    if (headSent || res.headersSent || res.destroyed) {
      // Part of the answer is out: the visitor must not take a short body for a whole one.
      res.destroy()
      return
    }
    if (unanswered && !this.retried && this.request.body === undefined) {
      const method = this.req.method ?? ''
      const retarget = this.proxy.hooks.retarget
      if (retarget !== undefined && IDEMPOTENT.has(method)) {
        // Nothing came back from this target: once more, on another one.
        const next = retarget(this.req, this.target, this.context)
        if (next !== undefined) {
          this.retried = true
          this.target = next
          this.proxy.dispatch(this, true)
          return
        }
      }
      if (stale && RETRYABLE.has(method)) {
        // A kept-alive connection the upstream closed just as it was reused: once more, on a new one.
        this.retried = true
        this.proxy.dispatch(this, true)
        return
      }
    }
    this.proxy.hooks.onError(this.req, res, error, this.target, this.context)
  }
}

function onClientDrain(this: ServerResponse & Carrier<unknown>): void {
  const exchange = this[EXCHANGE]
  if (exchange === undefined) return
  exchange.draining = false
  exchange.conn?.resume()
}

function onClientClose(this: ServerResponse & Carrier<unknown>): void {
  const exchange = this[EXCHANGE]
  this[EXCHANGE] = undefined
  // The visitor went away before the response was complete: so does the upstream exchange.
  if (exchange?.conn !== undefined) exchange.abandon()
}

export class EdgeProxy<C> {
  readonly hooks: ProxyHooks<C>
  readonly inflight: InflightRequests | undefined
  private readonly pool: UpstreamPool
  private readonly privateCookie: string | undefined
  private readonly connectTimeoutMs: number

  constructor(hooks: ProxyHooks<C>, options: ProxyOptions = {}) {
    this.hooks = hooks
    this.inflight = options.inflight
    this.privateCookie = options.privateCookie === undefined ? undefined : `${options.privateCookie}=`
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000
    this.pool = new UpstreamPool({ connectTimeoutMs: this.connectTimeoutMs, idleTimeoutMs: options.idleTimeoutMs ?? 4000, maxIdlePerUpstream: 256 })
  }

  /** Sends `req` to `target` and its response to `res`; `hooks.onError` answers when that fails. */
  forward(req: IncomingMessage, res: ServerResponse, target: ProxyTarget, context: C): void {
    if (res.destroyed) return // the visitor left while the edge looked the site up
    const raw = req.rawHeaders
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`
    let forwardedFor: string | undefined
    let forwardedHost: string | undefined
    let hasBody = false
    let chunked = false
    let connection: string | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      let value = raw[i + 1] as string
      const lower = name.toLowerCase()
      if (REQUEST_DROP.has(lower) || lower.startsWith('proxy-')) {
        if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
        else if (lower === 'transfer-encoding') hasBody = chunked = true
        else if (lower === 'connection') connection = value
        continue
      }
      if (lower === 'host') forwardedHost = value
      else if (lower === 'content-length') {
        if (value !== '0') hasBody = true
      } else if (lower === 'cookie' && this.privateCookie !== undefined && value.includes(this.privateCookie)) {
        value = withoutCookie(value, this.privateCookie)
        if (value === '') continue
      }
      head += `${name}: ${value}\r\n`
    }
    if (connection !== undefined) head = withoutListed(head, connection)
    const clientIp = clientIpOf(req)
    head += `X-Forwarded-For: ${forwardedFor === undefined ? clientIp : `${forwardedFor}, ${clientIp}`}\r\nX-Forwarded-Proto: ${protoOf(req)}\r\n`
    if (forwardedHost !== undefined) head += `X-Forwarded-Host: ${forwardedHost}\r\n`
    if (chunked) head += 'Transfer-Encoding: chunked\r\n'
    head += '\r\n'

    const request: OutgoingRequest = { head, body: hasBody ? req : undefined, chunked, headRequest: req.method === 'HEAD' }
    const exchange = new Exchange(this, req, res, target, context, request)
    ;(res as Carrier<C>)[EXCHANGE] = exchange
    res.on('close', onClientClose)
    this.dispatch(exchange, false)
  }

  /** @internal Sends the exchange's request on a pooled connection, or on a new one. */
  dispatch(exchange: Exchange<C>, fresh: boolean): void {
    const { host, port } = exchange.target
    if (this.inflight !== undefined) {
      const key = InflightRequests.key(host, port)
      exchange.counted = key
      this.inflight.start(key)
    }
    const conn = fresh ? this.pool.connect(host, port) : this.pool.acquire(host, port)
    exchange.conn = conn
    conn.send(exchange.request, exchange)
  }

  /**
   * A WebSocket (or other) upgrade: a raw TCP connection to the upstream, the request
   * written on it with the X-Forwarded headers, then bytes both ways until either side
   * closes. `onError` answers on `socket` when the upstream cannot be reached (or tries
   * another target). With `inflight`, the connection counts as in flight to `target` until
   * either side closes or connecting fails.
   */
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: ProxyTarget, onError: (error: UpstreamError) => void): void {
    if (socket.destroyed) return // the visitor left meanwhile
    const raw = req.rawHeaders
    let block = `${req.method} ${req.url} HTTP/1.1\r\n`
    let forwardedFor: string | undefined
    let forwardedHost: string | undefined
    let upgrade = 'websocket'
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      let value = raw[i + 1] as string
      const lower = name.toLowerCase()
      if (REQUEST_DROP.has(lower) || lower.startsWith('proxy-')) {
        if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
        else if (lower === 'upgrade') upgrade = value
        continue
      }
      if (lower === 'host') forwardedHost = value
      else if (lower === 'cookie' && this.privateCookie !== undefined && value.includes(this.privateCookie)) {
        value = withoutCookie(value, this.privateCookie)
        if (value === '') continue
      }
      block += `${name}: ${value}\r\n`
    }
    const clientIp = clientIpOf(req)
    block += `Connection: Upgrade\r\nUpgrade: ${upgrade}\r\nX-Forwarded-For: ${forwardedFor === undefined ? clientIp : `${forwardedFor}, ${clientIp}`}\r\nX-Forwarded-Proto: ${protoOf(req)}\r\n`
    if (forwardedHost !== undefined) block += `X-Forwarded-Host: ${forwardedHost}\r\n`
    block += '\r\n'

    const inflight = this.inflight
    let counted = inflight === undefined ? undefined : InflightRequests.key(target.host, target.port)
    if (counted !== undefined) inflight?.start(counted)
    const settle = (): void => {
      if (counted === undefined) return
      inflight?.end(counted)
      counted = undefined
    }
    const upstream = connect({ host: target.host, port: target.port })
    upstream.setNoDelay(true)
    let connected = false
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), this.connectTimeoutMs)
    const teardown = (): void => {
      clearTimeout(timer)
      settle()
      upstream.destroy()
      socket.destroy()
    }
    upstream.once('connect', () => {
      connected = true
      clearTimeout(timer)
      upstream.write(block, 'latin1')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    upstream.on('error', (error: UpstreamError) => {
      if (connected) teardown()
      else {
        clearTimeout(timer)
        settle()
        onError(error)
      }
    })
    upstream.on('close', () => {
      if (connected) teardown()
    })
    socket.on('error', teardown)
    socket.on('close', teardown)
  }

  /** Idle upstream connections (tests, metrics). */
  idleConnections(): number {
    return this.pool.idleCount()
  }

  close(): void {
    this.pool.close()
  }
}

/** The visitor's address: the peer of the connection (an X-Forwarded-For from a visitor is not trusted). */
export function clientIpOf(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? ''
  return address.startsWith('::ffff:') ? address.slice(7) : address
}

function protoOf(req: IncomingMessage): 'http' | 'https' {
  return (req.socket as Socket & { encrypted?: boolean }).encrypted === true ? 'https' : 'http'
}

/** A request head without the header lines its Connection header lists (rare: usually just keep-alive). */
function withoutListed(head: string, connection: string): string {
  const listed = new Set<string>()
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase()
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && name !== 'upgrade') listed.add(name)
  }
  if (listed.size === 0) return head
  const lines = head.split('\r\n')
  return lines.filter((line, i) => i === 0 || !listed.has(line.slice(0, line.indexOf(':')).toLowerCase())).join('\r\n')
}

/** A Cookie header without one cookie (`name=` given with its `=`). */
export function withoutCookie(header: string, nameEq: string): string {
  let out = ''
  for (const part of header.split(';')) {
    const cookie = part.trim()
    if (cookie === '' || cookie.startsWith(nameEq)) continue
    out = out === '' ? cookie : `${out}; ${cookie}`
  }
  return out
}
