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
    const url = `${this.apiUrl}${path}${queryString(options.query)}`
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
    let response: Response
    try {
      response = await this.fetchImpl(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal,
      })
    } catch (error) {
      const reason = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : describeNetworkError(error)
      throw new MiosaError('unavailable', `cannot reach the miosa API at ${this.apiUrl}: ${reason}`, { cause: error })
    }
    const text = await response.text()
    const json = parseJson(text)
    if (response.ok) return json as T
    throw toApiError(response, json, text)
  }
}

function toApiError(response: Response, json: unknown, text: string): MiosaApiError {
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
