import { MiosaError } from '../core/errors.js'
import type { Page } from '../schemas/common.js'
import type {
  CreateDeploymentInput,
  Deployment,
  InstancesResult,
  PlanInput,
  PlanResult,
  PromoteInput,
  PublishByNameInput,
  PublishInput,
  RollbackInput,
  RouteChange,
  RuntimeLogEvent,
  UpdateDeploymentInput,
  Version,
  VersionStatus,
} from '../schemas/deployments.js'
import { Resource } from './resource.js'
import type { ListParams } from './resource.js'
import { bodyOf, readServerSentEvents } from './streams.js'
import type { BinaryBody, Transport } from './transport.js'

// Publishing: deployments (the stable app and its URL), publishes (from a sandbox or an
// uploaded directory) that make numbered versions, their build logs, and rollback/promote.

export type DeploymentListParams = ListParams & { workspace_id?: string; project_id?: string; slug?: string; name?: string }
export type VersionListParams = ListParams & { status?: VersionStatus; environment?: string; version_number?: number; include_archived?: boolean }

export interface PublishOptions {
  /** Answer once the build has ended (ready or failed). */
  wait?: boolean
  /** Each line of build output as it comes (implies waiting). */
  onLog?: (line: string) => void
  signal?: AbortSignal
}

export interface UploadPublishParams {
  kind?: 'auto' | 'static' | 'dynamic'
  environment?: string
  install_command?: string
  build_command?: string
  output_dir?: string
  spa_fallback?: boolean
}

export interface RouteChangeResult {
  deployment: Deployment
  version: Version
  change: RouteChange
}

/** A build can take a while (npm install): waiting answers are not cut off by the usual timeout. */
const BUILD_TIMEOUT_MS = 30 * 60_000
const enc = encodeURIComponent

/** Versions: one per publish, numbered per deployment. */
export class Versions {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  list(deploymentId: string, params: VersionListParams = {}): Promise<Page<Version>> {
    return this.transport.request('GET', `${this.api}/deployments/${enc(deploymentId)}/versions`, { query: params as Record<string, never> })
  }

  get(id: string, signal?: AbortSignal): Promise<Version> {
    return this.transport.request('GET', `${this.api}/versions/${enc(id)}`, { signal })
  }

  /** Hides it from the default list; its release is kept. */
  archive(id: string): Promise<Version> {
    return this.transport.request('POST', `${this.api}/versions/${enc(id)}/archive`)
  }

  /** The build output as stored. */
  async logs(id: string): Promise<string> {
    const response = await this.transport.send('GET', `${this.api}/versions/${enc(id)}/logs`, { accept: 'text/plain' })
    return response.text()
  }

  /** Calls `onLine` with each line of build output, stored ones first, until the build ends; answers how it ended. */
  async followLogs(id: string, onLine: (line: string) => void, options: { signal?: AbortSignal } = {}): Promise<{ status: VersionStatus; error: string | null }> {
    const response = await this.transport.send('GET', `${this.api}/versions/${enc(id)}/logs`, {
      query: { follow: true },
      accept: 'text/event-stream',
      signal: options.signal,
    })
    for await (const { event, data } of readServerSentEvents(bodyOf(response))) {
      const message = JSON.parse(data) as { line?: string; status?: VersionStatus; error?: string | null | { code?: string; message?: string } }
      if (event === 'line') onLine(message.line ?? '')
      else if (event === 'end') return { status: message.status as VersionStatus, error: (message.error as string | null) ?? null }
      else if (event === 'error') {
        const error = message.error as { message?: string } | undefined
        throw new MiosaError('unavailable', error?.message ?? 'following the build logs failed')
      }
    }
    // The stream ended without saying how: ask.
    const version = await this.get(id)
    return { status: version.status, error: version.error }
  }
}

export class Deployments extends Resource<Deployment, DeploymentListParams> {
  constructor(
    transport: Transport,
    private readonly api: string,
    private readonly versions: Versions,
  ) {
    super(transport, `${api}/deployments`)
  }

  create(input: CreateDeploymentInput): Promise<Deployment> {
    return this.post(this.path, input)
  }

  /**
   * Publishes a sandbox's /workspace as a new version. Answers it at once (building), or with
   * `wait`/`onLog` once the build has ended (ready, or failed with its error).
   */
  async publish(id: string, input: PublishInput, options: PublishOptions = {}): Promise<Version> {
    return this.publishAt(this.itemPath(id, '/publish'), input, options)
  }

  /** The same, to the deployment of this name, created on first publish. */
  async publishByName(input: PublishByNameInput, options: PublishOptions = {}): Promise<Version> {
    return this.publishAt(`${this.api}/publish`, input, options)
  }

  /** Publishes a source directory sent as a tar (or tar.gz) archive. */
  async publishUpload(id: string, archive: BinaryBody, params: UploadPublishParams & { gzip?: boolean } = {}, options: PublishOptions = {}): Promise<Version> {
    const { gzip, ...query } = params
    const streaming = options.onLog !== undefined
    const response = await this.transport.send('POST', this.itemPath(id, '/publish/upload'), {
      query: { ...query, ...(options.wait === true && !streaming ? { wait: true } : {}) },
      bytes: archive,
      contentType: gzip === true ? 'application/gzip' : 'application/x-tar',
      signal: options.signal,
      timeoutMs: BUILD_TIMEOUT_MS,
    })
    const version = (await response.json()) as Version
    return streaming ? this.follow(version, options) : version
  }

  /** The build plan a publish of the sandbox would follow; nothing is built. Without a deployment id, before one exists. */
  plan(input: PlanInput, deploymentId?: string): Promise<PlanResult> {
    const path = deploymentId === undefined ? `${this.api}/plan` : this.itemPath(deploymentId, '/plan')
    return this.transport.request('POST', path, { body: input, timeoutMs: BUILD_TIMEOUT_MS })
  }

  /** The build plan of a source directory sent as a tar (or tar.gz) archive; nothing is built. */
  async planUpload(id: string, archive: BinaryBody, params: Omit<UploadPublishParams, 'environment'> & { gzip?: boolean } = {}): Promise<PlanResult> {
    const { gzip, ...query } = params
    const response = await this.transport.send('POST', this.itemPath(id, '/plan/upload'), {
      query,
      bytes: archive,
      contentType: gzip === true ? 'application/gzip' : 'application/x-tar',
      timeoutMs: BUILD_TIMEOUT_MS,
    })
    return (await response.json()) as PlanResult
  }

  /** Re-points an environment (default production) at an earlier ready version. */
  rollback(id: string, input: RollbackInput): Promise<RouteChangeResult> {
    return this.transport.request('POST', this.itemPath(id, '/rollback'), { body: input })
  }

  /** Points an environment at a ready version. */
  promote(id: string, input: PromoteInput): Promise<RouteChangeResult> {
    return this.transport.request('POST', this.itemPath(id, '/promote'), { body: input })
  }

  /** Changes the name or runtime settings: `{instances: 3}` scales (applied within a second). */
  update(id: string, input: UpdateDeploymentInput): Promise<Deployment> {
    return this.transport.request('PATCH', this.itemPath(id), { body: input })
  }

  /** The runtime instances of an environment (default production), the newest events and any crash loop. */
  instances(id: string, params: { environment?: string; events?: number } = {}): Promise<InstancesResult> {
    return this.transport.request('GET', this.itemPath(id, '/instances'), { query: params as Record<string, never> })
  }

  /** Fresh instances of the active version replace the running ones; answers once they serve. */
  restart(id: string, input: { environment?: string } = {}): Promise<InstancesResult> {
    return this.transport.request('POST', this.itemPath(id, '/restart'), { body: input, timeoutMs: BUILD_TIMEOUT_MS })
  }

  /** The last `tail` lines (default 100) of each instance, oldest first. */
  async logs(id: string, params: { environment?: string; tail?: number } = {}): Promise<RuntimeLogEvent[]> {
    const response = await this.transport.send('GET', this.itemPath(id, '/logs'), { query: params as Record<string, never>, accept: 'application/x-ndjson' })
    const text = await response.text()
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as RuntimeLogEvent)
  }

  /** Calls `onLine` with the last lines, then every new one, until `signal` aborts. */
  async followLogs(id: string, onLine: (line: RuntimeLogEvent) => void, options: { environment?: string; tail?: number; signal?: AbortSignal } = {}): Promise<void> {
    const { signal, ...query } = options
    const response = await this.transport.send('GET', this.itemPath(id, '/logs'), { query: { ...query, follow: true } as unknown as Record<string, never>, accept: 'text/event-stream', signal })
    try {
      for await (const { event, data } of readServerSentEvents(bodyOf(response))) {
        if (event === 'log') onLine(JSON.parse(data) as RuntimeLogEvent)
        else if (event === 'error') {
          const error = (JSON.parse(data) as { error?: { message?: string } }).error
          throw new MiosaError('unavailable', error?.message ?? 'following the runtime logs failed')
        }
      }
    } catch (error) {
      if (signal?.aborted === true) return
      throw error
    }
  }

  routeHistory(id: string, params: ListParams & { environment?: string } = {}): Promise<Page<RouteChange>> {
    return this.transport.request('GET', this.itemPath(id, '/route-history'), { query: params as Record<string, never> })
  }

  private async publishAt(path: string, input: unknown, options: PublishOptions): Promise<Version> {
    const streaming = options.onLog !== undefined
    const version = await this.transport.request<Version>('POST', path, {
      body: input,
      query: options.wait === true && !streaming ? { wait: true } : undefined,
      signal: options.signal,
      timeoutMs: options.wait === true && !streaming ? BUILD_TIMEOUT_MS : undefined,
    })
    return streaming ? this.follow(version, options) : version
  }

  private async follow(version: Version, options: PublishOptions): Promise<Version> {
    if (version.status === 'building') {
      await this.versions.followLogs(version.id, options.onLog ?? (() => {}), { signal: options.signal })
    }
    return this.versions.get(version.id, options.signal)
  }
}
