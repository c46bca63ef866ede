import { connect } from 'node:net'
import type { Socket } from 'node:net'
import type { IncomingMessage } from 'node:http'

// Kept-alive HTTP/1.1 connections from the edge to upstreams, and the client side of the
// protocol on them. The edge's hot path: node's http.request costs about twice the CPU per
// proxied request of this (ClientRequest, agent bookkeeping, a parser per response and an
// IncomingMessage stream); here a request is one string written on a pooled socket, and the
// response is parsed in place and handed on in slices of the socket's own buffers.
//
// What it implements of RFC 9112: status line and header fields (no obs-fold), 1xx
// interim responses (skipped), message body length (HEAD, 204, 304, Transfer-Encoding
// chunked, Content-Length, close-delimited), chunked decoding with trailers (dropped),
// keep-alive (HTTP/1.1 default, HTTP/1.0 only when asked, `Connection: close`). Anything
// malformed fails the exchange (a 502 when nothing was sent yet) and the connection.

/** A failure to reach the upstream or to read its answer. */
export type UpstreamError = Error & { code?: string }

/** Where a response goes: the edge's side of one exchange. */
export interface ResponseSink {
  /** Head of the response, hop-by-hop headers already removed. May throw (invalid header): the exchange fails. */
  head(status: number, reason: string, headers: string[], eventStream: boolean): void
  /** A slice of the body; false: pause until resume() is called on the connection. */
  data(chunk: Buffer): boolean
  /** The response is complete; `last` is its final slice, if any (head and body then go out in one write). */
  end(last: Buffer | undefined): void
  /**
   * The exchange failed. `headSent`: head() was called (the visitor has a partial answer);
   * `stale`: a reused connection failed before the upstream sent anything (a close race);
   * `unanswered`: the connection failed (refused, reset, timed out) before any byte of a
   * response arrived.
   */
  fail(error: UpstreamError, headSent: boolean, stale: boolean, unanswered: boolean): void
}

export interface OutgoingRequest {
  /** Request line and header fields, ending in the blank line. */
  head: string
  /** The visitor's request, when it has a body to stream. */
  body: IncomingMessage | undefined
  /** Send the body chunked (its length is not known). */
  chunked: boolean
  /** A HEAD request: the response has no body whatever its headers say. */
  headRequest: boolean
}

const MAX_HEAD_BYTES = 64 * 1024
const MAX_LINE_BYTES = 8 * 1024
const CRLF = '\r\n'
const DOUBLE_CRLF = Buffer.from('\r\n\r\n')
const LAST_CHUNK = '0\r\n\r\n'

// Response headers the visitor never sees: hop-by-hop (RFC 9110 7.6.1).
const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization'])

const enum State {
  Idle,
  Head,
  Length,
  Chunked,
  UntilClose,
}

const enum Chunk {
  Size,
  Data,
  DataEnd,
  Trailers,
}

function upstreamError(message: string, code: string): UpstreamError {
  return Object.assign(new Error(message), { code })
}

export class UpstreamConnection {
  readonly socket: Socket
  readonly key: string
  /** Served a request before: a failure before any answer may be a close race, worth one retry. */
  reused = false
  idleSince = 0
  private readonly pool: UpstreamPool
  private sink: ResponseSink | undefined
  private state = State.Idle
  private chunk = Chunk.Size
  private remaining = 0
  private pending: Buffer | undefined
  private line = ''
  private headRequest = false
  private keepAlive = true
  private headSent = false
  private received = false
  private body: IncomingMessage | undefined
  private chunked = false
  private requestDone = true
  private error: UpstreamError | undefined

  constructor(pool: UpstreamPool, key: string, host: string, port: number, connectTimeoutMs: number) {
    this.pool = pool
    this.key = key
    const socket = connect({ host, port })
    this.socket = socket
    socket.setNoDelay(true)
    socket.setTimeout(connectTimeoutMs)
    socket.on('connect', this.onConnect)
    socket.on('timeout', this.onTimeout)
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    socket.on('drain', this.onDrain)
  }

  /** Sends a request; its response goes to `sink`. */
  send(request: OutgoingRequest, sink: ResponseSink): void {
    this.sink = sink
    this.state = State.Head
    this.headRequest = request.headRequest
    this.keepAlive = true
    this.headSent = false
    this.received = false
    this.pending = undefined
    this.line = ''
    const body = request.body
    if (body === undefined) {
      this.requestDone = true
      this.socket.write(request.head, 'latin1')
      return
    }
    this.requestDone = false
    this.body = body
    this.chunked = request.chunked
    this.socket.write(request.head, 'latin1')
    body.on('data', this.onRequestData)
    body.on('end', this.onRequestEnd)
  }

  /** Continues reading the response after the sink asked for a pause. */
  resume(): void {
    if (this.sink !== undefined) this.socket.resume()
  }

  /** The visitor went away: the exchange on this connection (if still `sink`'s) ends, and the connection with it. */
  abandon(sink: ResponseSink): void {
    if (this.sink !== sink) return
    this.sink = undefined
    this.unhookBody()
    this.socket.destroy()
  }

  private readonly onConnect = (): void => {
    this.socket.setTimeout(0)
  }

  private readonly onTimeout = (): void => {
    if (this.socket.connecting) this.socket.destroy(upstreamError('connect timeout', 'ETIMEDOUT'))
  }

  private readonly onError = (error: UpstreamError): void => {
    this.error ??= error
  }

  private readonly onEnd = (): void => {
    if (this.sink !== undefined && this.state === State.UntilClose) this.complete(undefined)
  }

  private readonly onClose = (): void => {
    this.pool.forget(this)
    const sink = this.sink
    if (sink === undefined) return
    this.sink = undefined
    this.unhookBody()
    sink.fail(this.error ?? upstreamError('the upstream closed the connection', 'ECONNRESET'), this.headSent, this.reused && !this.received, !this.received)
  }

  private readonly onDrain = (): void => {
    if (this.body !== undefined && this.body.isPaused()) this.body.resume()
  }

  private readonly onRequestData = (chunk: Buffer): void => {
    if (chunk.length === 0) return
    let flushed: boolean
    if (this.chunked) {
      this.socket.cork()
      this.socket.write(chunk.length.toString(16) + CRLF)
      this.socket.write(chunk)
      flushed = this.socket.write(CRLF)
      this.socket.uncork()
    } else {
      flushed = this.socket.write(chunk)
    }
    if (!flushed) this.body?.pause()
  }

  private readonly onRequestEnd = (): void => {
    if (this.chunked) this.socket.write(LAST_CHUNK)
    this.unhookBody()
    this.requestDone = true
  }

  private unhookBody(): void {
    const body = this.body
    if (body === undefined) return
    this.body = undefined
    body.removeListener('data', this.onRequestData)
    body.removeListener('end', this.onRequestEnd)
    if (body.isPaused()) body.resume()
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.sink === undefined) {
      // Bytes on an idle connection (or after an abandoned exchange): nothing to pair them with.
      this.socket.destroy()
      return
    }
    this.received = true
    try {
      this.parse(chunk)
    } catch (error) {
      this.fail(error instanceof Error ? Object.assign(error, { code: (error as UpstreamError).code ?? 'EBADRESPONSE' }) : upstreamError(String(error), 'EBADRESPONSE'))
    }
  }

  private parse(input: Buffer): void {
    let buf = input
    let offset = 0
    while (offset < buf.length && this.sink !== undefined) {
      switch (this.state) {
        case State.Head: {
          if (this.pending !== undefined) {
            buf = Buffer.concat([this.pending, buf.subarray(offset)])
            offset = 0
            this.pending = undefined
          }
          const end = buf.indexOf(DOUBLE_CRLF, offset)
          if (end === -1 ? buf.length - offset > MAX_HEAD_BYTES : end - offset > MAX_HEAD_BYTES) {
            throw upstreamError('response head too large', 'EBADRESPONSE')
          }
          if (end === -1) {
            this.pending = buf.subarray(offset)
            return
          }
          const next = end + 4
          if (!this.readHead(buf.toString('latin1', offset, end))) {
            offset = next // an interim (1xx) response: the real one follows
            continue
          }
          offset = next
          const state = this.state as State // readHead() moved it on
          if (state === State.Idle) {
            this.complete(undefined, offset < buf.length)
            return
          }
          if (state === State.Length && buf.length - offset >= this.remaining) {
            // The whole body is here: head and body leave in one write.
            const last = buf.subarray(offset, offset + this.remaining)
            this.complete(last, offset + this.remaining < buf.length)
            return
          }
          continue
        }
        case State.Length: {
          const available = buf.length - offset
          if (available >= this.remaining) {
            const last = buf.subarray(offset, offset + this.remaining)
            this.complete(last, offset + this.remaining < buf.length)
            return
          }
          this.remaining -= available
          this.deliver(offset === 0 ? buf : buf.subarray(offset))
          return
        }
        case State.UntilClose:
          this.deliver(offset === 0 ? buf : buf.subarray(offset))
          return
        case State.Chunked:
          offset = this.parseChunked(buf, offset)
          continue
        case State.Idle:
          // More than the response: the connection is out of step.
          this.socket.destroy()
          return
      }
    }
  }

  /** One step of chunked decoding; returns the new offset. */
  private parseChunked(buf: Buffer, offset: number): number {
    switch (this.chunk) {
      case Chunk.Size: {
        const nl = buf.indexOf(10, offset)
        if (nl === -1) {
          this.appendLine(buf, offset, buf.length)
          return buf.length
        }
        this.appendLine(buf, offset, nl)
        const size = chunkSize(this.line)
        this.line = ''
        if (size === 0) this.chunk = Chunk.Trailers
        else {
          this.remaining = size
          this.chunk = Chunk.Data
        }
        return nl + 1
      }
      case Chunk.Data: {
        const take = Math.min(this.remaining, buf.length - offset)
        this.remaining -= take
        if (this.remaining === 0) {
          this.chunk = Chunk.DataEnd
          this.line = ''
        }
        this.deliver(buf.subarray(offset, offset + take))
        return offset + take
      }
      case Chunk.DataEnd: {
        // CRLF after the data (a bare LF is tolerated).
        const c = buf[offset]
        if (c === 13 && this.line === '') {
          this.line = '\r'
          return offset + 1
        }
        if (c === 10) {
          this.line = ''
          this.chunk = Chunk.Size
          return offset + 1
        }
        throw upstreamError('malformed chunked body', 'EBADRESPONSE')
      }
      case Chunk.Trailers: {
        const nl = buf.indexOf(10, offset)
        if (nl === -1) {
          this.appendLine(buf, offset, buf.length)
          return buf.length
        }
        this.appendLine(buf, offset, nl)
        const empty = this.line === '' || this.line === '\r'
        this.line = ''
        if (empty) this.complete(undefined, nl + 1 < buf.length)
        return nl + 1
      }
    }
  }

  private appendLine(buf: Buffer, start: number, end: number): void {
    if (this.line.length + (end - start) > MAX_LINE_BYTES) throw upstreamError('chunk line too long', 'EBADRESPONSE')
    this.line += buf.toString('latin1', start, end)
  }

  /** Reads a response head; false: an interim response, skipped. */
  private readHead(text: string): boolean {
    const firstEnd = text.indexOf(CRLF)
    const statusLine = firstEnd === -1 ? text : text.slice(0, firstEnd)
    if (statusLine.length < 12 || !statusLine.startsWith('HTTP/1.') || statusLine.charCodeAt(8) !== 32) {
      throw upstreamError('not an HTTP/1.x response', 'EBADRESPONSE')
    }
    const minor = statusLine.charCodeAt(7)
    const status = digits3(statusLine)
    if (status < 100 || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 32)) throw upstreamError('malformed status line', 'EBADRESPONSE')
    if (status < 200) {
      if (status === 101) throw upstreamError('unexpected protocol switch', 'EBADRESPONSE')
      return false
    }
    const reason = statusLine.length > 13 ? statusLine.slice(13) : ''
    let keepAlive = minor === 49 // HTTP/1.1; HTTP/1.0 only with `Connection: keep-alive`
    let length = -1
    let chunked = false
    let hasTransferEncoding = false
    let connection: string | undefined
    let eventStream = false
    const headers: string[] = []
    let start = firstEnd === -1 ? text.length : firstEnd + 2
    while (start < text.length) {
      let end = text.indexOf(CRLF, start)
      if (end === -1) end = text.length
      const colon = text.indexOf(':', start)
      if (colon <= start || colon > end) throw upstreamError('malformed header line', 'EBADRESPONSE')
      const name = text.slice(start, colon)
      const value = text.slice(colon + 1, end).trim()
      start = end + 2
      const lower = name.toLowerCase()
      if (RESPONSE_DROP.has(lower) || lower.startsWith('proxy-')) {
        if (lower === 'transfer-encoding') {
          hasTransferEncoding = true
          chunked = value.toLowerCase().endsWith('chunked')
        } else if (lower === 'connection') {
          const tokens = value.toLowerCase()
          connection = connection === undefined ? tokens : `${connection},${tokens}`
          if (tokens.includes('close')) keepAlive = false
          else if (tokens.includes('keep-alive') && minor === 48) keepAlive = true
        }
        continue
      }
      if (lower === 'content-length') {
        const n = contentLength(value)
        if (length !== -1 && n !== length) throw upstreamError('conflicting content lengths', 'EBADRESPONSE')
        length = n
      } else if (lower === 'content-type' && value.startsWith('text/event-stream')) eventStream = true
      headers.push(name, value)
    }
    if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') dropListed(headers, connection)
    if (!keepAlive) this.keepAlive = false

    if (this.headRequest || status === 204 || status === 304) this.state = State.Idle
    else if (hasTransferEncoding) {
      // Transfer-Encoding wins over Content-Length (RFC 9112 6.3): drop the latter.
      if (length !== -1) dropHeader(headers, 'content-length')
      if (chunked) {
        this.state = State.Chunked
        this.chunk = Chunk.Size
        this.line = ''
      } else {
        this.state = State.UntilClose
        this.keepAlive = false
      }
    } else if (length === 0) this.state = State.Idle
    else if (length > 0) {
      this.state = State.Length
      this.remaining = length
    } else {
      this.state = State.UntilClose
      this.keepAlive = false
    }
    ;(this.sink as ResponseSink).head(status, reason, headers, eventStream)
    this.headSent = true
    return true
  }

  private deliver(chunk: Buffer): void {
    if (chunk.length === 0) return
    if (!(this.sink as ResponseSink).data(chunk)) this.socket.pause()
  }

  /** The response is complete: hand over its last slice, then keep or close the connection. */
  private complete(last: Buffer | undefined, extraBytes = false): void {
    const sink = this.sink as ResponseSink
    this.sink = undefined
    this.state = State.Idle
    if (extraBytes) this.keepAlive = false
    sink.end(last)
    if (!this.keepAlive) {
      this.unhookBody()
      this.socket.destroy()
    } else if (this.requestDone) this.release()
    else {
      // The upstream answered before reading the whole request: the connection is out of step.
      this.unhookBody()
      this.socket.destroy()
    }
  }

  private fail(error: UpstreamError): void {
    const sink = this.sink
    this.sink = undefined
    this.unhookBody()
    this.socket.destroy()
    sink?.fail(error, this.headSent, false, false)
  }

  private release(): void {
    if (this.socket.destroyed || !this.socket.writable) return
    if (this.socket.isPaused()) this.socket.resume()
    this.reused = true
    this.pool.release(this)
  }
}

function digits3(line: string): number {
  let n = 0
  for (let i = 9; i < 12; i++) {
    const c = line.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    n = n * 10 + c
  }
  return n
}

function contentLength(value: string): number {
  if (value.length === 0 || value.length > 15) throw upstreamError('invalid content length', 'EBADRESPONSE')
  let n = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 48
    if (c < 0 || c > 9) throw upstreamError('invalid content length', 'EBADRESPONSE')
    n = n * 10 + c
  }
  return n
}

function chunkSize(line: string): number {
  let end = line.length
  const semicolon = line.indexOf(';')
  if (semicolon !== -1) end = semicolon
  if (end > 0 && line.charCodeAt(end - 1) === 13) end--
  while (end > 0 && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--
  if (end === 0 || end > 12) throw upstreamError('invalid chunk size', 'EBADRESPONSE')
  let n = 0
  for (let i = 0; i < end; i++) {
    const c = line.charCodeAt(i)
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1
    if (d === -1) throw upstreamError('invalid chunk size', 'EBADRESPONSE')
    n = n * 16 + d
  }
  return n
}

/** Removes from a raw header array the headers a Connection header lists. */
export function dropListed(headers: string[], connection: string): void {
  const listed = connection
    .split(',')
    .map((token) => token.trim().toLowerCase())
    .filter((token) => token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade')
  if (listed.length === 0) return
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (listed.includes((headers[i] as string).toLowerCase())) headers.splice(i, 2)
  }
}

function dropHeader(headers: string[], lower: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if ((headers[i] as string).toLowerCase() === lower) headers.splice(i, 2)
  }
}

export interface UpstreamPoolOptions {
  /** How long connecting may take. */
  connectTimeoutMs: number
  /**
   * How long an idle connection is kept: below the 5 s keep-alive timeout of Node's http
   * server (Vite, Next.js), so the edge seldom reuses a connection the upstream is closing.
   */
  idleTimeoutMs: number
  /** Idle connections kept per upstream. */
  maxIdlePerUpstream: number
}

/** Idle connections per upstream (`host:port`), most recently used first out. */
export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>()
  private readonly options: UpstreamPoolOptions
  private readonly sweeper: NodeJS.Timeout

  constructor(options: UpstreamPoolOptions) {
    this.options = options
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, Math.floor(options.idleTimeoutMs / 2)))
    this.sweeper.unref()
  }

  /** An idle connection to the upstream, or a new one. */
  acquire(host: string, port: number): UpstreamConnection {
    const key = `${host}:${port}`
    const list = this.idle.get(key)
    if (list !== undefined) {
      const now = Date.now()
      for (let conn = list.pop(); conn !== undefined; conn = list.pop()) {
        if (!conn.socket.destroyed && conn.socket.writable && now - conn.idleSince < this.options.idleTimeoutMs) return conn
        conn.socket.destroy()
      }
    }
    return new UpstreamConnection(this, key, host, port, this.options.connectTimeoutMs)
  }

  /** A new connection, never a pooled one (the retry after a reused one failed). */
  connect(host: string, port: number): UpstreamConnection {
    return new UpstreamConnection(this, `${host}:${port}`, host, port, this.options.connectTimeoutMs)
  }

  release(conn: UpstreamConnection): void {
    let list = this.idle.get(conn.key)
    if (list === undefined) {
      list = []
      this.idle.set(conn.key, list)
    }
    if (list.length >= this.options.maxIdlePerUpstream) {
      conn.socket.destroy()
      return
    }
    conn.idleSince = Date.now()
    list.push(conn)
  }

  /** A connection closed: out of the idle list if it was there. */
  forget(conn: UpstreamConnection): void {
    const list = this.idle.get(conn.key)
    if (list === undefined) return
    const at = list.indexOf(conn)
    if (at !== -1) list.splice(at, 1)
    if (list.length === 0) this.idle.delete(conn.key)
  }

  /** Idle connections, for tests and metrics. */
  idleCount(): number {
    let n = 0
    for (const list of this.idle.values()) n += list.length
    return n
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const list of this.idle.values()) for (const conn of list) conn.socket.destroy()
    this.idle.clear()
  }

  private sweep(): void {
    const cutoff = Date.now() - this.options.idleTimeoutMs
    for (const [key, list] of this.idle) {
      let expired = 0
      while (expired < list.length && (list[expired] as UpstreamConnection).idleSince <= cutoff) expired++
      if (expired === 0) continue
      for (const conn of list.splice(0, expired)) conn.socket.destroy()
      if (list.length === 0) this.idle.delete(key)
    }
  }
}
