import { MiosaError, isErrorCode } from '../core/errors.js'
import type { Page } from '../schemas/common.js'
import type {
  CreateSandboxInput,
  CreateSnapshotInput,
  ExecInput,
  ExecResultOutput,
  FileStatOutput,
  ForkSandboxInput,
  PreviewUrl,
  Sandbox,
  SandboxState,
  Snapshot,
  UpdateSandboxInput,
} from '../schemas/sandboxes.js'
import type { BackgroundService, StartServiceInput } from '../schemas/sandbox-services.js'
import { Resource } from './resource.js'
import type { ListParams } from './resource.js'
import { bodyOf, decodeBase64, readServerSentEvents } from './streams.js'
import type { BinaryBody, Transport } from './transport.js'

// Sandboxes: lifecycle, exec (buffered and streamed), files, archives and snapshots.

export type SandboxListParams = ListParams & {
  state?: SandboxState
  template?: string
  workspace_id?: string
  project_id?: string
}

export type ExecExit = Omit<ExecResultOutput, 'stdout' | 'stderr'>

export interface ExecStreamOptions {
  onStdout?: (chunk: Uint8Array) => void
  onStderr?: (chunk: Uint8Array) => void
  /** Aborting it closes the stream, which aborts the command. */
  signal?: AbortSignal
}

export interface WaitOptions {
  /** Default 10 minutes: the first use of a template builds its image. */
  timeoutMs?: number
  /** Default 1 s. */
  intervalMs?: number
  signal?: AbortSignal
  /** Called with every state seen while waiting (for a progress display). */
  onPoll?: (sandbox: Sandbox) => void
}

export interface TransferOptions {
  signal?: AbortSignal
  /** How long to wait for the server to answer; default 10 minutes. */
  timeoutMs?: number
}

/** Where a WebSocket route is and the headers that authenticate it (browsers cannot set them: use it from a server). */
export interface SocketTarget {
  url: string
  headers: Record<string, string>
}

const DEFAULT_EXEC_TIMEOUT_S = 300
/** Time on top of an exec's own timeout for the sandbox to resume and the answer to arrive. */
const EXEC_MARGIN_MS = 60_000
const TRANSFER_TIMEOUT_MS = 10 * 60_000
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** Seconds of `10m`, `1h`, `90` (the SDK may not import server code, so this mirrors core/durations). */
function seconds(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return value
  const match = value.trim().match(/^(\d+(?:\.\d+)?)\s*([smhd]?)$/i)
  return match === null ? undefined : Number(match[1]) * (UNITS[(match[2] || 's').toLowerCase()] ?? 1)
}

function execTimeoutMs(input: ExecInput): number {
  return (seconds(input.timeout) ?? DEFAULT_EXEC_TIMEOUT_S) * 1000 + EXEC_MARGIN_MS
}

const enc = encodeURIComponent

/** A sandbox's snapshots. */
export class Snapshots {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  /** Takes a snapshot of the sandbox (it shows `snapshotting` meanwhile). */
  create(sandboxId: string, input: CreateSnapshotInput = {}): Promise<Snapshot> {
    return this.transport.request('POST', `${this.api}/sandboxes/${enc(sandboxId)}/snapshots`, { body: input, timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  list(sandboxId: string, params: ListParams = {}): Promise<Page<Snapshot>> {
    return this.transport.request('GET', `${this.api}/sandboxes/${enc(sandboxId)}/snapshots`, { query: params as Record<string, never> })
  }

  get(snapshotId: string): Promise<Snapshot> {
    return this.transport.request('GET', `${this.api}/snapshots/${enc(snapshotId)}`)
  }

  delete(snapshotId: string): Promise<{ id: string; deleted: true }> {
    return this.transport.request('DELETE', `${this.api}/snapshots/${enc(snapshotId)}`)
  }
}

export class Sandboxes extends Resource<Sandbox, SandboxListParams> {
  readonly snapshots: Snapshots

  constructor(transport: Transport, api: string) {
    super(transport, `${api}/sandboxes`)
    this.snapshots = new Snapshots(transport, api)
  }

  /**
   * Creates a sandbox. It answers at once in state `creating`; with `wait`, once it is
   * `running` (polling, so a first-use image build of several minutes is fine), and throws
   * with the sandbox's reason when it ends in `error`.
   */
  async create(input: CreateSandboxInput = {}, options: { wait?: boolean } & WaitOptions = {}): Promise<Sandbox> {
    const created = await this.post<Sandbox>(this.path, input)
    if (options.wait !== true) return created
    return this.waitUntil(created.id, ['running'], options)
  }

  /** Polls until the sandbox is in one of `states`; throws if it lands in `error` or `destroyed` instead, or on timeout. */
  async waitUntil(id: string, states: readonly SandboxState[], options: WaitOptions = {}): Promise<Sandbox> {
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000)
    const interval = options.intervalMs ?? 1000
    for (;;) {
      const sandbox = await this.get(id, options.signal)
      options.onPoll?.(sandbox)
      if (states.includes(sandbox.state)) return sandbox
      if (sandbox.state === 'error' || sandbox.state === 'destroyed') {
        const why = sandbox.error === null ? '' : `: ${sandbox.error}`
        throw new MiosaError('conflict', `sandbox ${id} is ${sandbox.state}${why}`, {
          details: { state: sandbox.state, error: sandbox.error },
        })
      }
      if (Date.now() + interval > deadline) {
        throw new MiosaError('unavailable', `sandbox ${id} is still ${sandbox.state}, not ${states.join(' or ')}, after ${options.timeoutMs ?? 600_000} ms`, {
          details: { state: sandbox.state },
        })
      }
      await sleep(interval, options.signal)
    }
  }

  /** Renames it, changes its idle timeout or attribution, or makes its previews public (`preview_public`). */
  update(id: string, input: UpdateSandboxInput): Promise<Sandbox> {
    return this.transport.request('PATCH', this.itemPath(id), { body: input })
  }

  /** The preview URL of a port (default: the template's default port). Never construct it yourself. */
  previewUrl(id: string, options: { port?: number } = {}): Promise<PreviewUrl> {
    return this.transport.request('GET', this.itemPath(id, '/preview-url'), { query: { port: options.port } })
  }

  stop(id: string): Promise<Sandbox> {
    return this.transport.request('POST', this.itemPath(id, '/stop'), { timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  resume(id: string): Promise<Sandbox> {
    return this.transport.request('POST', this.itemPath(id, '/resume'), { timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  /** Destroys the sandbox for good (its snapshots stay) and answers it in state `destroyed`. */
  destroy(id: string): Promise<Sandbox> {
    return this.transport.request('DELETE', this.itemPath(id), { timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  /** Resets the idle timer; `timeout` ('1h', seconds) also replaces the sandbox's timeout. */
  keepAlive(id: string, input: { timeout?: string | number } = {}): Promise<Sandbox> {
    return this.transport.request('POST', this.itemPath(id, '/keep-alive'), { body: input })
  }

  /** A new sandbox from the current state of this one, which is left untouched. */
  fork(id: string, input: ForkSandboxInput = {}): Promise<Sandbox> {
    return this.transport.request('POST', this.itemPath(id, '/fork'), { body: input, timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  // ── exec ────────────────────────────────────────────────────────────────────

  /** Runs a command (argv array, or a string run by `sh -lc`) and answers its output once it exits. */
  exec(id: string, input: ExecInput, options: { signal?: AbortSignal } = {}): Promise<ExecResultOutput> {
    return this.transport.request('POST', this.itemPath(id, '/exec'), { body: input, signal: options.signal, timeoutMs: execTimeoutMs(input) })
  }

  /** Runs a command, passing its output to the callbacks as it comes; answers its exit. Aborting `signal` aborts the command. */
  async execStream(id: string, input: ExecInput, options: ExecStreamOptions = {}): Promise<ExecExit> {
    const response = await this.transport.send('POST', this.itemPath(id, '/exec'), {
      query: { stream: true },
      json: input,
      accept: 'text/event-stream',
      signal: options.signal,
      timeoutMs: execTimeoutMs(input),
    })
    for await (const { event, data } of readServerSentEvents(bodyOf(response))) {
      const message = JSON.parse(data) as { data?: string; error?: { code?: string; message?: string } } & ExecExit
      if (event === 'stdout') options.onStdout?.(decodeBase64(message.data ?? ''))
      else if (event === 'stderr') options.onStderr?.(decodeBase64(message.data ?? ''))
      else if (event === 'exit') {
        const { exit_code, duration_ms, truncated, timed_out } = message
        return { exit_code, duration_ms, truncated, timed_out }
      } else if (event === 'error') {
        const code = message.error?.code
        throw new MiosaError(isErrorCode(code) ? code : 'internal', message.error?.message ?? 'the command failed')
      }
    }
    throw new MiosaError('unavailable', 'the exec stream ended before the command exited')
  }

  // ── background services ─────────────────────────────────────────────────────

  /** Starts a command in the background (a dev server) as a service of the sandbox: it is started again whenever the sandbox resumes. */
  startService(id: string, input: StartServiceInput): Promise<BackgroundService> {
    return this.transport.request('POST', this.itemPath(id, '/services'), { body: input, timeoutMs: TRANSFER_TIMEOUT_MS })
  }

  /** The sandbox's background services, oldest first. */
  async listServices(id: string): Promise<BackgroundService[]> {
    return (await this.transport.request<{ data: BackgroundService[] }>('GET', this.itemPath(id, '/services'))).data
  }

  /** Ends a background service and forgets it. */
  removeService(id: string, serviceId: string): Promise<{ id: string; deleted: true }> {
    return this.transport.request('DELETE', this.itemPath(id, `/services/${encodeURIComponent(serviceId)}`))
  }

  /** Where to open exec with stdin over a WebSocket (see the API documentation for its messages). */
  execSocket(id: string): SocketTarget {
    return this.transport.socket(this.itemPath(id, '/exec/ws'))
  }

  /** Where to open an interactive terminal over a WebSocket. */
  terminalSocket(id: string, size: { cols?: number; rows?: number } = {}): SocketTarget {
    return this.transport.socket(this.itemPath(id, '/terminal'), { cols: size.cols, rows: size.rows })
  }

  // ── files ───────────────────────────────────────────────────────────────────

  async readFile(id: string, path: string, options: TransferOptions = {}): Promise<Uint8Array> {
    return new Uint8Array(await (await this.readFileResponse(id, path, options)).arrayBuffer())
  }

  async readText(id: string, path: string, options: TransferOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readFile(id, path, options))
  }

  /** The file's bytes as they arrive, for large files. */
  async readFileStream(id: string, path: string, options: TransferOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return bodyOf(await this.readFileResponse(id, path, options))
  }

  /** Writes a file (parents created), binary-safe; `mode` as octal text, e.g. '755'. */
  writeFile(id: string, path: string, data: BinaryBody, options: TransferOptions & { mode?: string } = {}): Promise<FileStatOutput> {
    return this.sendJson('PUT', this.itemPath(id, '/files'), { path, mode: options.mode }, data, 'application/octet-stream', options)
  }

  stat(id: string, path: string): Promise<FileStatOutput> {
    return this.transport.request('GET', this.itemPath(id, '/files/stat'), { query: { path } })
  }

  async listFiles(id: string, path = '/workspace'): Promise<FileStatOutput[]> {
    const listed = await this.transport.request<{ entries: FileStatOutput[] }>('GET', this.itemPath(id, '/files/list'), { query: { path } })
    return listed.entries
  }

  mkdir(id: string, path: string): Promise<FileStatOutput> {
    return this.post(this.itemPath(id, '/files/mkdir'), { path })
  }

  move(id: string, from: string, to: string, options: { overwrite?: boolean } = {}): Promise<FileStatOutput> {
    return this.post(this.itemPath(id, '/files/move'), { from, to, overwrite: options.overwrite ?? false })
  }

  remove(id: string, path: string, options: { recursive?: boolean } = {}): Promise<{ path: string; deleted: true }> {
    return this.transport.request('DELETE', this.itemPath(id, '/files'), { query: { path, recursive: options.recursive === true } })
  }

  /** A tar of the directory's contents. */
  async downloadArchive(id: string, path: string, options: TransferOptions = {}): Promise<Uint8Array> {
    return new Uint8Array(await (await this.archiveResponse(id, path, options)).arrayBuffer())
  }

  async downloadArchiveStream(id: string, path: string, options: TransferOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return bodyOf(await this.archiveResponse(id, path, options))
  }

  /** Extracts a tar (or, with `gzip`, a tar.gz) into the directory; an archive with entries that escape it is refused whole. */
  uploadArchive(id: string, path: string, data: BinaryBody, options: TransferOptions & { gzip?: boolean } = {}): Promise<FileStatOutput> {
    const type = options.gzip === true ? 'application/gzip' : 'application/x-tar'
    return this.sendJson('PUT', this.itemPath(id, '/archive'), { path }, data, type, options)
  }

  private readFileResponse(id: string, path: string, options: TransferOptions): Promise<Response> {
    return this.transport.send('GET', this.itemPath(id, '/files'), {
      query: { path },
      accept: 'application/octet-stream',
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? TRANSFER_TIMEOUT_MS,
    })
  }

  private archiveResponse(id: string, path: string, options: TransferOptions): Promise<Response> {
    return this.transport.send('GET', this.itemPath(id, '/archive'), {
      query: { path },
      accept: 'application/x-tar',
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? TRANSFER_TIMEOUT_MS,
    })
  }

  private async sendJson<T>(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    data: BinaryBody,
    contentType: string,
    options: TransferOptions,
  ): Promise<T> {
    const response = await this.transport.send(method, path, {
      query,
      bytes: data,
      contentType,
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? TRANSFER_TIMEOUT_MS,
    })
    return (await response.json()) as T
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason)
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason)
      },
      { once: true },
    )
  })
}
