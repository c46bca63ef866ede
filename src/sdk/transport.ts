import { MiosaError, isErrorCode } from '../core/errors.js'

// HTTP for the SDK: fetch only, so it runs in browsers, Node, Deno and workers alike.

export interface ClientOptions {
  /** Base URL of the API server. Default: MIOSA_API_URL, else http://127.0.0.1:8080. */
  apiUrl?: string | undefined
  /** An API key (msk_…). Default: MIOSA_API_KEY. Keep it server-side: never ship it to a browser. */
  apiKey?: string | undefined
  /** Per-request timeout in milliseconds. Default 30 000. */
  timeoutMs?: number | undefined
  fetch?: typeof fetch | undefined
}

/** An error answered by the API: a MiosaError with the HTTP status and the request id to quote. */
export class MiosaApiError extends MiosaError {
  constructor(
    code: ConstructorParameters<typeof MiosaError>[0],
    message: string,
    readonly status: number,
    readonly requestId: string | undefined,
    details: unknown,
  ) {
    super(code, message, { details })
    this.name = 'MiosaApiError'
  }
}

export type QueryValue = string | number | boolean | undefined | null | Record<string, string>

export interface RequestOptions {
  query?: Record<string, QueryValue> | undefined
  body?: unknown
  signal?: AbortSignal | undefined
  /** This request's timeout instead of the client's; null: none. */
  timeoutMs?: number | null | undefined
}

/** Bytes a request can carry as they are. */
export type BinaryBody = string | Uint8Array | Blob | ReadableStream<Uint8Array>

export interface SendOptions {
  query?: Record<string, QueryValue> | undefined
  /** A JSON body (sent as application/json). */
  json?: unknown
  /** Raw bytes, sent with `contentType`. */
  bytes?: BinaryBody | undefined
  contentType?: string | undefined
  accept?: string | undefined
  signal?: AbortSignal | undefined
  /** How long to wait for the response headers (the body may take longer); null: no limit. Default: the client's timeout. */
  timeoutMs?: number | null | undefined
}

function env(name: string): string | undefined {
  // Browser-safe: `process` exists only on server runtimes.
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
  const value = p?.env?.[name]
  return value === '' ? undefined : value
}

export class Transport {
  readonly apiUrl: string
  private readonly apiKey: string | undefined
  private readonly timeoutMs: number
  private readonly fetchImpl: typeof fetch

  constructor(options: ClientOptions = {}) {
    this.apiUrl = (options.apiUrl ?? env('MIOSA_API_URL') ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
    // An empty key is no key, whether it came from an option or the environment.
    this.apiKey = (options.apiKey === '' ? undefined : options.apiKey) ?? env('MIOSA_API_KEY')
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis)
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : options.timeoutMs
    // The whole exchange, body included, falls under the timeout.
    const timeout = timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)
    const signal = combine(options.signal, timeout)
    const response = await this.fetch(method, path, { query: options.query, json: options.body, signal }, () =>
      timeout?.aborted === true ? `no answer within ${timeoutMs} ms` : undefined,
    )
    let text: string
    try {
      text = await response.text()
    } catch (error) {
      throw this.unreachable(error, timeout?.aborted === true ? `no answer within ${timeoutMs} ms` : undefined)
    }
    const json = parseJson(text)
    if (response.ok) return json as T
    throw toApiError(response, json, text)
  }

  /**
   * A request whose answer is read as a stream (bytes, server-sent events, NDJSON) or that
   * sends raw bytes. Resolves with the response once its headers are in; an error status
   * is thrown as a MiosaApiError.
   */
  async send(method: string, path: string, options: SendOptions = {}): Promise<Response> {
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : options.timeoutMs
    // Only the wait for headers is timed: a long download or stream is not cut off.
    const timer = new AbortController()
    const handle = timeoutMs === null ? undefined : setTimeout(() => timer.abort(), timeoutMs)
    try {
      const response = await this.fetch(method, path, { ...options, signal: combine(options.signal, timer.signal) }, () =>
        timer.signal.aborted ? `no answer within ${timeoutMs} ms` : undefined,
      )
      if (response.ok) return response
      const text = await response.text().catch(() => '')
      throw toApiError(response, parseJson(text), text)
    } finally {
      clearTimeout(handle)
    }
  }

  /** The WebSocket URL of a path (ws:// or wss://) and the headers that authenticate it. */
  socket(path: string, query?: Record<string, QueryValue>): { url: string; headers: Record<string, string> } {
    const url = `${this.apiUrl.replace(/^http/i, 'ws')}${path}${queryString(query)}`
    return { url, headers: this.apiKey === undefined ? {} : { authorization: `Bearer ${this.apiKey}` } }
  }

  private async fetch(
    method: string,
    path: string,
    options: Omit<SendOptions, 'timeoutMs'>,
    timedOut: () => string | undefined,
  ): Promise<Response> {
    const url = `${this.apiUrl}${path}${queryString(options.query)}`
    const headers: Record<string, string> = { accept: options.accept ?? 'application/json' }
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`
    let body: RequestInit['body']
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.json)
    } else if (options.bytes !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/octet-stream'
      body = options.bytes as RequestInit['body']
    }
    try {
      // duplex: a streamed request body (a ReadableStream) needs it in fetch implementations that follow the spec.
      const init = { method, headers, body, signal: options.signal, duplex: 'half' } as RequestInit
      return await this.fetchImpl(url, init)
    } catch (error) {
      throw this.unreachable(error, timedOut())
    }
  }

  private unreachable(error: unknown, timedOut: string | undefined): MiosaError {
    if (timedOut === undefined && (error as { name?: string }).name === 'AbortError') {
      return new MiosaError('unavailable', 'the request was aborted', { cause: error })
    }
    const reason = timedOut ?? describeNetworkError(error)
    return new MiosaError('unavailable', `cannot reach the miosa API at ${this.apiUrl}: ${reason}`, { cause: error })
  }
}

function combine(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return AbortSignal.any([a, b])
}

export function toApiError(response: Response, json: unknown, text: string): MiosaApiError {
  const error = (json as { error?: { code?: unknown; message?: unknown; details?: unknown; request_id?: unknown } } | undefined)?.error
  const requestId = response.headers.get('x-request-id') ?? undefined
  if (error !== undefined && typeof error.message === 'string') {
    const code = isErrorCode(error.code) ? error.code : 'internal'
    return new MiosaApiError(code, error.message, response.status, requestId, error.details ?? undefined)
  }
  const code = response.status === 404 ? 'not_found' : response.status >= 500 ? 'unavailable' : 'invalid'
  return new MiosaApiError(code, `HTTP ${response.status}: ${text.slice(0, 200) || response.statusText}`, response.status, requestId, undefined)
}

function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (error as Error).message
}

function queryString(query: RequestOptions['query']): string {
  if (query === undefined) return ''
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue
    if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) params.append(`${key}[${k}]`, v)
    } else {
      params.append(key, String(value))
    }
  }
  const s = params.toString()
  return s === '' ? '' : `?${s}`
}
