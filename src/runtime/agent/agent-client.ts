import { Agent, request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { MiosaError } from '../../core/errors.js'
import type { ErrorCode } from '../../core/errors.js'
import type { ExecStreams } from '../runtime-driver.js'
import { AGENT_TOKEN_HEADER } from './protocol.js'
import type { AgentError, AgentHealth, ExecEvent, ExecExit, ExecRequest, ExecResponse, FileStat, ServiceStarted } from './protocol.js'

// The platform's side of ./protocol.ts: one client per sandbox container, over a keep-alive
// socket pool. Agent errors become MiosaErrors; an agent that does not answer (container
// starting, stopped, gone) is `unavailable`.

/** A container that vanished leaves an address nobody answers on: give up on connecting after this. */
const CONNECT_TIMEOUT_MS = 5_000
/** Idle sockets close before the agent's 65 s keep-alive, so a reused socket is never one it is closing. */
const IDLE_SOCKET_MS = 30_000
const READY_POLL_MS = 5
const ERROR_BODY_LIMIT = 64 * 1024
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'])

const CODES: Record<AgentError['error']['code'], ErrorCode> = {
  invalid: 'invalid',
  forbidden: 'forbidden',
  payload_too_large: 'payload_too_large',
  not_found: 'not_found',
  conflict: 'conflict',
  internal: 'internal',
  // The platform's own token was refused: a fault of the platform, not of its caller.
  unauthenticated: 'internal',
}

export interface AgentClientOptions {
  host: string
  port: number
  token: string
}

interface Call {
  method: string
  path: string
  query?: Record<string, string | undefined>
  headers?: Record<string, string>
  /** JSON values are sent as JSON; a Readable is streamed (and never retried). */
  body?: Buffer | Readable | object
  signal?: AbortSignal | undefined
}

export class AgentClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: IDLE_SOCKET_MS })

  constructor(private readonly options: AgentClientOptions) {}

  health(signal?: AbortSignal): Promise<AgentHealth> {
    return this.json({ method: 'GET', path: '/health', signal })
  }

  /** Polls /health until the agent answers; `unavailable` when it has not within `ms`. */
  async waitUntilReady(ms: number): Promise<AgentHealth> {
    const deadline = Date.now() + ms
    for (;;) {
      const signal = AbortSignal.timeout(Math.max(deadline - Date.now(), 1))
      try {
        return await this.health(signal)
      } catch (error) {
        const retry = error instanceof MiosaError ? error.code === 'unavailable' : signal.aborted
        if (!retry) throw error
        if (Date.now() >= deadline) {
          throw new MiosaError('unavailable', `the sandbox agent did not answer within ${ms} ms`, { cause: error })
        }
      }
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS))
    }
  }

  /** Starts a command in the background under this id (ending one running under it first). */
  startService(id: string, request: Omit<ExecRequest, 'timeout_ms' | 'stdin_base64' | 'max_output_bytes'>): Promise<ServiceStarted> {
    return this.json({ method: 'POST', path: '/services', body: { id, ...request } })
  }

  /** Ends the service's process group; false when it was not running. */
  async stopService(id: string): Promise<boolean> {
    return (await this.json<{ stopped: boolean }>({ method: 'DELETE', path: '/services', query: { id } })).stopped
  }

  exec(request: ExecRequest, signal?: AbortSignal): Promise<ExecResponse> {
    return this.json({ method: 'POST', path: '/exec', body: request, signal })
  }

  /**
   * Runs a command with its output (and optionally input) streamed; resolves with its exit.
   * Aborting breaks the connection, and the agent kills the command's process group.
   */
  async execStream(request: ExecRequest, io: ExecStreams): Promise<ExecExit> {
    io.signal?.throwIfAborted()
    const req = this.open({ method: 'POST', path: '/exec', query: { stream: '1' }, headers: { 'content-type': 'application/x-ndjson' } })
    req.setNoDelay(true)
    let settled = false
    let fail: (error: unknown) => void = () => {}
    const exit = new Promise<ExecExit>((resolve, reject) => {
      fail = (error) => {
        if (settled) return
        settled = true
        req.destroy()
        reject(translate(error))
      }
      const done = (event: ExecExit) => {
        settled = true
        // A stdin the command never finished reading: the request ends here, with its socket.
        if (!req.writableEnded) req.destroy()
        resolve(event)
      }
      req.on('error', fail)
      this.response(req).then((res) => {
        const onEvent = (event: ExecEvent) => {
          if (settled) return
          if (event.type === 'stdout') io.onStdout(Buffer.from(event.data, 'base64'))
          else if (event.type === 'stderr') io.onStderr(Buffer.from(event.data, 'base64'))
          else if (event.type === 'exit') done(event)
          else if (event.type === 'error') fail(new MiosaError('internal', `the sandbox agent failed the exec: ${event.message}`))
        }
        readLines(res, (line) => {
          try {
            onEvent(JSON.parse(line) as ExecEvent)
          } catch (error) {
            fail(error)
          }
        })
        res.on('error', fail)
        res.on('close', () => fail(new MiosaError('unavailable', 'the sandbox agent ended the exec stream before the command exited')))
      }, fail)
    })
    const onAbort = () => fail(io.signal?.reason)
    io.signal?.addEventListener('abort', onAbort, { once: true })
    void this.feed(req, request, io.stdin, () => settled).catch(fail)
    try {
      return await exit
    } finally {
      io.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** The request line, then stdin as the iterable yields it, then stdin_end. */
  private async feed(req: ClientRequest, request: ExecRequest, stdin: AsyncIterable<Buffer> | undefined, stopped: () => boolean): Promise<void> {
    const line = (value: unknown) => `${JSON.stringify(value)}\n`
    req.write(line(request))
    if (stdin !== undefined) {
      for await (const chunk of stdin) {
        if (stopped() || req.destroyed) return
        if (!req.write(line({ type: 'stdin', data: chunk.toString('base64') }))) await drained(req)
      }
    }
    if (!stopped() && !req.destroyed) req.end(line({ type: 'stdin_end' }))
  }

  /** The file's bytes, streamed. */
  readFile(path: string): Promise<Readable> {
    return this.send({ method: 'GET', path: '/files', query: { path } })
  }

  writeFile(path: string, content: Buffer | Readable, mode?: number): Promise<FileStat> {
    return this.json({
      method: 'PUT',
      path: '/files',
      query: { path, mode: mode === undefined ? undefined : (mode & 0o7777).toString(8) },
      headers: { 'content-type': 'application/octet-stream' },
      body: content,
    })
  }

  stat(path: string): Promise<FileStat> {
    return this.json({ method: 'GET', path: '/files/stat', query: { path } })
  }

  async list(path: string): Promise<FileStat[]> {
    return (await this.json<{ entries: FileStat[] }>({ method: 'GET', path: '/files/list', query: { path } })).entries
  }

  mkdir(path: string): Promise<FileStat> {
    return this.json({ method: 'POST', path: '/files/mkdir', body: { path } })
  }

  move(from: string, to: string, overwrite = false): Promise<FileStat> {
    return this.json({ method: 'POST', path: '/files/move', body: { from, to, overwrite } })
  }

  async remove(path: string, o: { recursive?: boolean } = {}): Promise<void> {
    await this.json({ method: 'DELETE', path: '/files', query: { path, recursive: o.recursive === true ? '1' : undefined } })
  }

  /** A tar of the directory's contents, streamed. */
  downloadArchive(path: string): Promise<Readable> {
    return this.send({ method: 'GET', path: '/archive', query: { path } })
  }

  /** Extracts a tar into the directory (created). The caller has refused entries that would escape it. */
  async uploadArchive(path: string, tar: Readable): Promise<void> {
    await this.json({ method: 'PUT', path: '/archive', query: { path }, headers: { 'content-type': 'application/x-tar' }, body: tar })
  }

  /** Closes the pooled sockets; requests in flight are broken. */
  close(): void {
    this.agent.destroy()
  }

  private async json<T>(call: Call): Promise<T> {
    const res = await this.send(call)
    try {
      return JSON.parse((await readAll(res, Number.POSITIVE_INFINITY)).toString('utf8')) as T
    } catch (error) {
      throw translate(error)
    }
  }

  /** The response of a 2xx answer, its body unread; an error answer is thrown as a MiosaError. */
  private async send(call: Call): Promise<IncomingMessage> {
    // A request that dies on a reused keep-alive socket before any answer never reached the
    // agent (it closed that socket as idle): sent again once, unless its body was a stream.
    const replayable = !(call.body instanceof Readable)
    for (let attempt = 1; ; attempt++) {
      const req = this.open(call)
      try {
        const response = this.response(req)
        writeBody(req, call.body)
        return await response
      } catch (error) {
        const code = (error as { cause?: { code?: string } }).cause?.code
        if (!(replayable && attempt === 1 && req.reusedSocket && code === 'ECONNRESET')) throw error
      }
    }
  }

  private open(call: Call): ClientRequest {
    const query = Object.entries(call.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined)
    const path = query.length === 0 ? call.path : `${call.path}?${new URLSearchParams(query).toString()}`
    const req = httpRequest({
      host: this.options.host,
      port: this.options.port,
      method: call.method,
      path,
      agent: this.agent,
      headers: { [AGENT_TOKEN_HEADER]: this.options.token, ...call.headers },
      ...(call.signal === undefined ? {} : { signal: call.signal }),
    })
    req.on('socket', (socket) => {
      if (!socket.connecting) return
      const timer = setTimeout(() => req.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), CONNECT_TIMEOUT_MS)
      socket.once('connect', () => clearTimeout(timer))
      req.once('close', () => clearTimeout(timer))
    })
    return req
  }

  /** Resolves with a 2xx response; rejects with the agent's error, or `unavailable`. */
  private response(req: ClientRequest): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      // Kept for the request's life: a socket error after the answer must not go unhandled.
      req.on('error', (error) => reject(translate(error)))
      req.once('response', (res) => {
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) resolve(res)
        else readError(res).then(reject, (error: unknown) => reject(translate(error)))
      })
    })
  }
}

function writeBody(req: ClientRequest, body: Call['body']): void {
  if (body === undefined) {
    req.end()
  } else if (body instanceof Readable) {
    body.once('error', (error) => req.destroy(error))
    body.pipe(req)
  } else {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
    if (!Buffer.isBuffer(body)) req.setHeader('content-type', 'application/json')
    req.setHeader('content-length', bytes.length)
    req.end(bytes)
  }
}

/** The agent's AgentError (or whatever it sent) as a MiosaError. */
async function readError(res: IncomingMessage): Promise<MiosaError> {
  const status = res.statusCode ?? 0
  const text = (await readAll(res, ERROR_BODY_LIMIT)).toString('utf8')
  let body: Partial<AgentError> | undefined
  try {
    body = JSON.parse(text) as Partial<AgentError>
  } catch {
    body = undefined
  }
  const error = body?.error
  if (error === undefined || typeof error.message !== 'string' || !(error.code in CODES)) {
    return new MiosaError('internal', `the sandbox agent answered ${status}: ${text.slice(0, 200)}`)
  }
  const message = error.code === 'unauthenticated' ? `the sandbox agent refused the platform's token: ${error.message}` : error.message
  return new MiosaError(CODES[error.code], message, { details: { agentStatus: status } })
}

/** Connection failures (the agent is not answering) as `unavailable`; anything else unchanged. */
function translate(error: unknown): unknown {
  if (error instanceof MiosaError) return error
  const code = (error as { code?: string } | undefined)?.code
  if (code !== undefined && UNREACHABLE.has(code)) {
    return new MiosaError('unavailable', `the sandbox agent is not answering (${code})`, { cause: error })
  }
  return error
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (size >= limit) continue
    chunks.push(chunk)
    size += chunk.length
  }
  return Buffer.concat(chunks)
}

/** Calls `onLine` for every line of an NDJSON stream. */
function readLines(stream: Readable, onLine: (line: string) => void): void {
  let pending: Buffer = Buffer.alloc(0)
  stream.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let newline: number
    while ((newline = pending.indexOf(10)) !== -1) {
      const line = pending.subarray(0, newline).toString('utf8')
      pending = pending.subarray(newline + 1)
      if (line !== '') onLine(line)
    }
  })
}

function drained(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done)
      req.off('close', done)
      resolve()
    }
    req.on('drain', done)
    req.on('close', done)
  })
}
