import type { Readable } from 'node:stream'
import type { BuildSettings, Builder, PublishKind, SourceSnapshot } from '../builder/builder.js'
import type { PlanResult, Version, VersionStatus } from '../schemas/deployments.js'
import { DEFAULT_ENVIRONMENT } from '../schemas/deployments.js'
import type { DeploymentRecord, OrgScope, RouteChangeRecord, Store, VersionRecord } from '../store/store.js'
import { attributionOf } from './attribution.js'
import { errorDetailsOf } from './build-failure.js'
import type { AttributionInput } from './attribution.js'
import type { OrganizationCaller } from './caller.js'
import { nowIso } from './clock.js'
import type { CreateDeployment, DeploymentService } from './deployments.js'
import { versionWire } from './deployments.js'
import type { EnvironmentService } from './environments.js'
import { MiosaError } from './errors.js'
import { newId } from './ids.js'
import type { Log } from './log.js'
import { silentLog } from './log.js'
import type { EnvironmentValues } from './environment-values.js'
import type { RuntimeInstances } from './runtime-instances.js'
import type { RouteSwitch } from './route-switch.js'
import type { QuotaService } from './quotas.js'
import { secretMasker } from './secret-masker.js'
import type { SandboxService } from './sandboxes.js'

// Publishing: a frozen copy of a workspace (or an uploaded directory) built into an
// immutable release, recorded as a numbered version, and served once ready. The version is
// answered at once in status `building`; the build runs in the background of this process,
// its output kept with the version and streamed to followers. A failed build never changes
// what an environment serves; a restart marks builds it interrupted as failed.

/** Build output kept with a version: its last part, so a chatty build cannot grow a row without bound. */
export const VERSION_LOG_LIMIT_CHARS = 256 * 1024
/** How often build output is written to the version while it runs. */
export const LOG_FLUSH_INTERVAL_MS = 250
export const DEFAULT_BUILD_TIMEOUT_MS = 15 * 60_000
export const INTERRUPTED_BUILD_ERROR = 'interrupted by a platform restart'
export const SHUTDOWN_BUILD_ERROR = 'interrupted: the platform shut down'

export interface PublishInput extends AttributionInput {
  /** The sandbox whose /workspace is published; absent when the source is uploaded. */
  sandbox_id?: string | undefined
  kind?: PublishKind | undefined
  environment?: string | undefined
  settings?: BuildSettings | undefined
}

export interface PublishByName extends PublishInput {
  name: string
  slug?: string | undefined
  workspace_id?: string | undefined
  project_id?: string | undefined
}

export interface PlanInput {
  sandbox_id: string
  kind?: PublishKind | undefined
  settings?: BuildSettings | undefined
}

/** The end of a build, as followers of its logs are told. */
export interface BuildEnd {
  status: VersionStatus
  error: string | null
}

/** A build running in this process: its output so far, who follows it, and when it ends. */
class RunningBuild {
  text = ''
  private dirty = false
  private writing: Promise<void> = Promise.resolve()
  private readonly followers = new Set<(line: string | undefined) => void>()
  readonly controller = new AbortController()
  done: Promise<void> = Promise.resolve()
  /** Hides the environment's secret values in every line kept or shown (set once they are known). */
  mask: (line: string) => string = (line) => line

  constructor(private readonly write: (text: string) => Promise<void>) {}

  append(raw: string): void {
    const line = this.mask(raw)
    this.text += `${line}\n`
    if (this.text.length > VERSION_LOG_LIMIT_CHARS) {
      const cut = this.text.slice(-VERSION_LOG_LIMIT_CHARS)
      const newline = cut.indexOf('\n')
      this.text = newline < 0 ? cut : cut.slice(newline + 1)
    }
    this.dirty = true
    for (const follower of this.followers) follower(line)
  }

  /** Writes the output to the version when it changed since the last write; writes never overlap. */
  flush(): Promise<void> {
    if (!this.dirty) return this.writing
    this.dirty = false
    const text = this.text
    this.writing = this.writing.then(() => this.write(text))
    return this.writing
  }

  /** Lines so far, then `undefined` once the build has ended. Called synchronously with the snapshot of `text`. */
  follow(listener: (line: string | undefined) => void): () => void {
    this.followers.add(listener)
    return () => this.followers.delete(listener)
  }

  end(): void {
    for (const follower of this.followers) follower(undefined)
    this.followers.clear()
  }
}

export class PublishService {
  private readonly builds = new Map<string, RunningBuild>()
  /** Release image exports running in the background, by release sha256. */
  private readonly archiving = new Map<string, Promise<void>>()
  private readonly archiveAbort = new AbortController()
  /** Exports run one at a time: each reads and writes the whole image (hundreds of MB). */
  private archiveQueue: Promise<void> = Promise.resolve()

  constructor(
    private readonly deps: {
      store: Store
      deployments: DeploymentService
      /** Moves the route when a version goes live, and tells every edge. */
      routes: RouteSwitch
      /** The environment a publish names must exist (checked before anything is written). */
      environments: EnvironmentService
      sandboxes: SandboxService
      /** Dynamic versions go live through a rollout of their instances. */
      instances?: RuntimeInstances | undefined
      /** Builds past the concurrent-builds quota, or with storage full, are refused (quota_exceeded). */
      quotas?: QuotaService | undefined
      /** The env vars of deployment environments: build-time ones go to the builder, secrets are masked in logs. */
      environmentValues?: EnvironmentValues | undefined
      /** Undefined: publishing answers unavailable. */
      builder?: Builder | undefined
      log?: Log | undefined
      buildTimeoutMs?: number | undefined
    },
  ) {}

  private get log(): Log {
    return this.deps.log ?? silentLog
  }

  // ── publish ─────────────────────────────────────────────────────────────────

  /** Publishes the sandbox's /workspace to the deployment: answers the version (building; with `wait`, ended). */
  async publish(organizationId: string, caller: OrganizationCaller, deploymentId: string, input: PublishInput, opts: { wait?: boolean } = {}): Promise<Version> {
    const scope = { organization_id: organizationId }
    const deployment = await this.deps.deployments.record(scope, deploymentId)
    await this.deps.environments.ensure(scope, deployment, input.environment ?? DEFAULT_ENVIRONMENT)
    const source = await this.sourceOf(scope, requireSandbox(input))
    return this.publishSource(deployment, caller, input, source, opts)
  }

  /** The same, to the deployment of that name (by slug) in the workspace, created on first publish. */
  async publishByName(organizationId: string, caller: OrganizationCaller, input: PublishByName, opts: { wait?: boolean } = {}): Promise<Version> {
    const scope = { organization_id: organizationId }
    // Everything the request names is checked before anything is created.
    const planned = await this.deps.deployments.findOrPlan(organizationId, deploymentInput(input))
    await this.deps.environments.ensure(scope, planned, input.environment ?? DEFAULT_ENVIRONMENT)
    const source = await this.sourceOf(scope, requireSandbox(input))
    // A build refused by a quota creates no deployment either.
    const { deployment, version } = await this.admitBuild({ organization_id: organizationId, workspace_id: planned.workspace_id }, async () => {
      const deployment = await this.deps.deployments.findOrCreate(organizationId, deploymentInput(input))
      return { deployment, version: await this.createVersion(deployment, caller, input, source) }
    })
    return this.startBuild(deployment, version, input, async () => source, opts)
  }

  /** Publishes an uploaded tar (or tar.gz) of a source directory. The upload is captured before this answers. */
  async publishUpload(
    organizationId: string,
    caller: OrganizationCaller,
    deploymentId: string,
    tar: Readable,
    input: Omit<PublishInput, 'sandbox_id'>,
    opts: { wait?: boolean } = {},
  ): Promise<Version> {
    const scope = { organization_id: organizationId }
    const deployment = await this.deps.deployments.record(scope, deploymentId)
    await this.deps.environments.ensure(scope, deployment, input.environment ?? DEFAULT_ENVIRONMENT)
    const builder = this.builder()
    const source = await builder.captureUpload(tar)
    return this.publishSource(deployment, caller, { ...input, sandbox_id: undefined }, source, opts)
  }

  /** What a publish would do (for `miosa deploy --plan`): the snapshot is captured and planned, nothing is built. */
  async plan(organizationId: string, input: PlanInput, deploymentId?: string): Promise<PlanResult> {
    const scope = { organization_id: organizationId }
    const deployment = deploymentId === undefined ? undefined : await this.deps.deployments.record(scope, deploymentId)
    await this.deps.sandboxes.record(scope, input.sandbox_id)
    const builder = this.builder()
    const source = await this.captureSandbox(scope, input.sandbox_id)
    const plan = await builder.plan(source, input.kind ?? 'auto', settingsFor(deployment, input.settings))
    return { plan, source }
  }

  /** The same for an uploaded source directory (tar or tar.gz). */
  async planUpload(organizationId: string, deploymentId: string, tar: Readable, input: Omit<PlanInput, 'sandbox_id'>): Promise<PlanResult> {
    const deployment = await this.deps.deployments.record({ organization_id: organizationId }, deploymentId)
    const builder = this.builder()
    const source = await builder.captureUpload(tar)
    const plan = await builder.plan(source, input.kind ?? 'auto', settingsFor(deployment, input.settings))
    return { plan, source }
  }

  /**
   * The sandbox's /workspace, frozen now: whatever the sandbox does from here on, the
   * version holds the workspace as it was when publish was called. Taken before anything is
   * written, so a publish that cannot capture leaves no deployment or version behind.
   */
  private async sourceOf(scope: OrgScope, sandboxId: string): Promise<SourceSnapshot> {
    const sandbox = await this.deps.sandboxes.record(scope, sandboxId)
    if (sandbox.state === 'destroyed' || sandbox.state === 'error') {
      throw new MiosaError('conflict', `sandbox ${sandbox.id} is ${sandbox.state}: there is no workspace to publish`, {
        details: { field: 'sandbox_id', state: sandbox.state },
      })
    }
    this.builder()
    return this.captureSandbox(scope, sandboxId)
  }

  private async publishSource(
    deployment: DeploymentRecord,
    caller: OrganizationCaller,
    input: PublishInput,
    source: SourceSnapshot,
    opts: { wait?: boolean },
  ): Promise<Version> {
    const version = await this.admitBuild(deployment, () => this.createVersion(deployment, caller, input, source))
    return this.startBuild(deployment, version, input, async () => source, opts)
  }

  /** Runs `write` (which records a version building) once the concurrent-builds quota has room and storage is not full. */
  private admitBuild<T>(subject: { organization_id: string; workspace_id: string }, write: () => Promise<T>): Promise<T> {
    return this.deps.quotas === undefined ? write() : this.deps.quotas.admit(subject, { concurrent_builds: 1, storage: true }, write)
  }

  private createVersion(deployment: DeploymentRecord, caller: OrganizationCaller, input: PublishInput, source: SourceSnapshot): Promise<VersionRecord> {
    const now = nowIso()
    return this.deps.store.versions.insertNext({
      id: newId('version'),
      organization_id: deployment.organization_id,
      workspace_id: deployment.workspace_id,
      deployment_id: deployment.id,
      environment: input.environment ?? DEFAULT_ENVIRONMENT,
      status: 'building',
      error: null,
      error_details: null,
      kind: input.kind ?? 'auto',
      plan: null,
      source_sha256: source.sha256,
      release_sha256: null,
      release_kind: null,
      sandbox_id: input.sandbox_id ?? null,
      logs: '',
      created_by: caller.api_key_id,
      ...attributionOf(input),
      created_at: now,
      updated_at: now,
      finished_at: null,
    })
  }

  private async startBuild(
    deployment: DeploymentRecord,
    version: VersionRecord,
    input: PublishInput,
    capture: () => Promise<SourceSnapshot>,
    opts: { wait?: boolean },
  ): Promise<Version> {
    const scope = { organization_id: version.organization_id }
    const build = new RunningBuild(async (logs) => {
      await this.deps.store.versions.update(scope, version.id, { logs })
    })
    this.builds.set(version.id, build)
    const timer = setInterval(() => void build.flush().catch((error: unknown) => this.log.warn({ err: error, version_id: version.id }, 'writing build logs failed')), LOG_FLUSH_INTERVAL_MS)
    timer.unref()
    build.done = this.runBuild(deployment, version, input, capture, build)
      .catch((error: unknown) => this.log.error({ err: error, version_id: version.id }, 'recording the end of a build failed'))
      .finally(() => {
        clearInterval(timer)
        this.builds.delete(version.id)
        build.end()
      })
    if (opts.wait === true) await build.done
    const current = opts.wait === true ? ((await this.deps.store.versions.get(scope, version.id)) ?? version) : version
    return versionWire(current, await this.deps.deployments.urlOf(deployment, undefined, current.environment))
  }

  private async runBuild(
    deployment: DeploymentRecord,
    version: VersionRecord,
    input: PublishInput,
    capture: () => Promise<SourceSnapshot>,
    build: RunningBuild,
  ): Promise<void> {
    const scope = { organization_id: version.organization_id }
    const builder = this.builder()
    const started = Date.now()
    const update = (patch: Partial<VersionRecord>) => this.deps.store.versions.update(scope, version.id, { ...patch, updated_at: nowIso() })
    try {
      build.append(`miosa: publishing version ${version.version_number} of ${deployment.slug} (${version.environment})`)
      const source = await capture()
      build.append(`miosa: source snapshot ${source.sha256} (${source.files} files, ${source.size_bytes} bytes)`)
      await update({ source_sha256: source.sha256 })
      const plan = await builder.plan(source, version.kind, settingsFor(deployment, input.settings))
      for (const reason of plan.reasons) build.append(`miosa: plan: ${reason}`)
      await update({ plan })
      // Build-time values go to the builder; any secret of the environment (a release command
      // runs with the runtime ones) is masked in what the build prints.
      const values = this.deps.environmentValues
      const buildEnv = await values?.resolve(scope, deployment.id, version.environment, 'build')
      const runtimeEnv = await values?.resolve(scope, deployment.id, version.environment, 'runtime')
      build.mask = secretMasker([...(buildEnv?.secrets ?? []), ...(runtimeEnv?.secrets ?? [])])
      if (buildEnv !== undefined && Object.keys(buildEnv.env).length > 0) build.append(`miosa: build-time env vars: ${Object.keys(buildEnv.env).sort().join(', ')}`)
      if (build.controller.signal.aborted) throw new MiosaError('unavailable', SHUTDOWN_BUILD_ERROR)
      const release = await builder.build({
        organizationId: version.organization_id,
        workspaceId: version.workspace_id,
        versionId: version.id,
        source,
        plan,
        timeoutMs: this.deps.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS,
        env: buildEnv?.env,
        onLog: (line) => build.append(line),
        signal: build.controller.signal,
      })
      await this.deps.store.releases.put({
        sha256: release.sha256,
        kind: release.kind,
        size_bytes: release.size_bytes,
        archive_sha256: release.archive_sha256 ?? null,
        created_at: nowIso(),
      })
      build.append(`miosa: release ${release.sha256} (${release.kind}, ${release.size_bytes} bytes) in ${Date.now() - started} ms`)
      await build.flush()
      let change: RouteChangeRecord | undefined
      // Ready, then live unless a later version went live meanwhile.
      const flip = async (): Promise<boolean> => {
        await update({ status: 'ready', release_sha256: release.sha256, release_kind: release.kind, finished_at: nowIso() })
        // Every edge drops its cached route now, before the old instances start draining.
        change = await this.deps.routes.repoint(
          scope,
          {
            id: newId('routeChange'),
            organization_id: version.organization_id,
            deployment_id: version.deployment_id,
            environment: version.environment,
            to_version_id: version.id,
            reason: 'publish',
            actor: version.created_by,
            created_at: nowIso(),
          },
          { staticReleaseSha256: release.kind === 'static' ? release.sha256 : null, onlyIfNewer: true },
        )
        return change !== undefined
      }
      if (release.kind === 'dynamic') {
        if (this.deps.instances === undefined) throw new MiosaError('unavailable', 'no runtime for dynamic apps is configured')
        // The release's image and plan are recorded first: the rollout boots from them.
        await update({ release_sha256: release.sha256, release_kind: release.kind })
        const current = { ...version, plan, release_sha256: release.sha256, release_kind: release.kind }
        const fresh = await this.deps.deployments.record(scope, deployment.id)
        await this.deps.instances.rollout({ deployment: fresh, environment: version.environment, version: current, runReleaseCommand: true, onLog: (line) => build.append(line), flip })
        // Hundreds of MB with the template's layers: stored once the version is live, not before.
        if (release.archive_sha256 === undefined) {
          build.append('miosa: the release image is being stored as an OCI archive in the background')
          this.archiveLater(release.sha256)
        }
      } else {
        await flip()
      }
      await build.flush()
      this.log.info(
        { deployment_id: deployment.id, version_id: version.id, version_number: version.version_number, release_sha256: release.sha256, live: change !== undefined },
        'version published',
      )
    } catch (error) {
      const reason = build.controller.signal.aborted ? SHUTDOWN_BUILD_ERROR : reasonOf(error)
      // Taken before the failure line: the output that explains it, not the summary.
      const error_details = errorDetailsOf(version.id, error, build.text, build.mask)
      build.append(`miosa: build failed: ${reason}`)
      await build.flush().catch((err: unknown) => this.log.warn({ version_id: version.id, err }, 'could not save the end of a failed build\'s log'))
      await update({ status: 'failed', error: build.mask(reason), error_details, finished_at: nowIso() })
      this.log.warn({ deployment_id: deployment.id, version_id: version.id, err: error }, 'publish failed')
    }
  }

  // ── release archives ────────────────────────────────────────────────────────

  /**
   * Stores a dynamic release's image as an OCI archive in the blob store, in the background
   * (once per release at a time); until then this host serves it from its own image.
   */
  archiveLater(sha256: string): void {
    const builder = this.deps.builder
    if (builder === undefined || this.archiving.has(sha256)) return
    const job = this.archiveQueue.then(async () => {
      if (this.archiveAbort.signal.aborted) return
      const release = await this.deps.store.releases.get(sha256)
      if (release === undefined || release.kind !== 'dynamic' || (release.archive_sha256 ?? null) !== null) return
      const stored = await builder.archiveRelease(sha256, this.archiveAbort.signal)
      await this.deps.store.releases.setArchive(sha256, stored.sha256)
    })
      .catch((error: unknown) => {
        if (!this.archiveAbort.signal.aborted) this.log.warn({ err: error, release_sha256: sha256 }, 'storing a release image archive failed (retried at the next start)')
      })
      .finally(() => this.archiving.delete(sha256))
    this.archiveQueue = job
    this.archiving.set(sha256, job)
  }

  /** At start: archives the dynamic releases a restart left without one. Answers how many it started. */
  async archiveMissing(): Promise<number> {
    const missing = await this.deps.store.releases.findUnarchived()
    for (const release of missing) this.archiveLater(release.sha256)
    return missing.length
  }

  /** Waits for the background archive exports running now (tests, benchmarks). */
  async archived(): Promise<void> {
    await Promise.all(this.archiving.values())
  }

  // ── logs ────────────────────────────────────────────────────────────────────

  /** The version's build output as stored (the last 256 KiB). */
  async logs(organizationId: string, versionId: string): Promise<string> {
    const version = await this.deps.deployments.versionRecord({ organization_id: organizationId }, versionId)
    return this.builds.get(versionId)?.text ?? version.logs
  }

  /**
   * The version's build output line by line: what is stored, then each new line until the
   * build ends (at once when it is not building in this process). `end()` then tells how it ended.
   */
  async follow(organizationId: string, versionId: string, signal?: AbortSignal): Promise<{ lines: AsyncIterable<string>; end: () => Promise<BuildEnd> }> {
    const scope = { organization_id: organizationId }
    const version = await this.deps.deployments.versionRecord(scope, versionId)
    const end = async (): Promise<BuildEnd> => {
      const current = (await this.deps.store.versions.get(scope, versionId)) ?? version
      return { status: current.status, error: current.error }
    }
    const build = this.builds.get(versionId)
    if (build === undefined) return { lines: replay(splitLines(version.logs)), end }
    // Snapshot and subscription in one synchronous step: no line is lost or repeated.
    const queue: (string | undefined)[] = splitLines(build.text)
    let wake: (() => void) | undefined
    const stop = build.follow((line) => {
      queue.push(line)
      wake?.()
    })
    signal?.addEventListener('abort', () => wake?.(), { once: true })
    const lines = async function* (): AsyncGenerator<string> {
      try {
        for (;;) {
          while (queue.length > 0) {
            const line = queue.shift()
            if (line === undefined) return
            yield line
          }
          if (signal?.aborted === true) return
          await new Promise<void>((resolve) => (wake = resolve))
          wake = undefined
        }
      } finally {
        stop()
      }
    }
    return { lines: lines(), end }
  }

  /** Waits for a build running in this process to end (tests, shutdown). */
  async settled(versionId: string): Promise<void> {
    await this.builds.get(versionId)?.done
  }

  /**
   * At shutdown: aborts the builds running in this process and waits until each is recorded
   * failed ('interrupted: the platform shut down'), so none is left building.
   */
  async shutdown(): Promise<void> {
    const running = [...this.builds.values()]
    for (const build of running) build.controller.abort()
    // An export cut short stores nothing; the next start exports again.
    this.archiveAbort.abort()
    await Promise.all([...running.map((build) => build.done), ...this.archiving.values()])
  }

  // ── restart ─────────────────────────────────────────────────────────────────

  /**
   * Marks every version left `building` (by a process that stopped mid-build) failed, with
   * the reason; what each environment serves is untouched. Run once at platform start,
   * before any publish. Answers how many were marked.
   */
  async recoverInterruptedBuilds(): Promise<number> {
    const stuck = await this.deps.store.versions.findInStatuses(['building'])
    let marked = 0
    for (const version of stuck) {
      if (this.builds.has(version.id)) continue
      const now = nowIso()
      const logs = `${version.logs}miosa: build failed: ${INTERRUPTED_BUILD_ERROR}\n`.slice(-VERSION_LOG_LIMIT_CHARS)
      await this.deps.store.versions.update(
        { organization_id: version.organization_id },
        version.id,
        { status: 'failed', error: INTERRUPTED_BUILD_ERROR, logs, finished_at: now, updated_at: now },
      )
      marked++
    }
    if (marked > 0) this.log.warn({ versions: stuck.map((v) => v.id) }, 'builds interrupted by a restart marked failed')
    return marked
  }

  // ── helpers ─────────────────────────────────────────────────────────────────

  private builder(): Builder {
    if (this.deps.builder === undefined) throw new MiosaError('unavailable', 'no builder configured')
    return this.deps.builder
  }

  private async captureSandbox(scope: OrgScope, sandboxId: string): Promise<SourceSnapshot> {
    const record = await this.deps.sandboxes.ensureRunning(scope, sandboxId)
    return this.builder().captureSource(this.deps.sandboxes.refOf(record))
  }
}

function requireSandbox(input: PublishInput): string {
  if (input.sandbox_id === undefined) {
    throw new MiosaError('invalid', 'sandbox_id: name the sandbox to publish (or upload the source directory)', { details: { field: 'sandbox_id' } })
  }
  return input.sandbox_id
}

function deploymentInput(input: PublishByName): CreateDeployment {
  return {
    name: input.name,
    slug: input.slug,
    workspace_id: input.workspace_id,
    project_id: input.project_id,
    spa_fallback: input.settings?.spa_fallback,
    external_user_id: input.external_user_id,
    external_project_id: input.external_project_id,
    external_workspace_id: input.external_workspace_id,
    metadata: input.metadata,
  }
}

/**
 * The request's settings, with the deployment's SPA fallback where the request says nothing;
 * a deployment's default (off) leaves it to detection, which turns it on for single-page apps.
 */
function settingsFor(deployment: DeploymentRecord | undefined, settings: BuildSettings | undefined): BuildSettings {
  return { ...settings, spa_fallback: settings?.spa_fallback ?? (deployment?.spa_fallback === true ? true : undefined) }
}

async function* replay(lines: string[]): AsyncGenerator<string> {
  yield* lines
}

function splitLines(text: string): string[] {
  if (text === '') return []
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines
}

/** A reason fit to show the deployment's owner: our own messages, never a stack or internals. */
function reasonOf(error: unknown): string {
  if (error instanceof MiosaError) return error.message
  return error instanceof Error ? error.message.slice(0, 500) : 'unknown error'
}
