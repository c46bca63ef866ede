import type { RuntimeDriver, RuntimeRef, TemplateProgress } from '../runtime/runtime-driver.js'
import type { Page } from '../schemas/common.js'
import type { PreviewUrl, Sandbox, SandboxState, Snapshot } from '../schemas/sandboxes.js'
import { DEFAULT_ENVIRONMENT } from '../schemas/deployments.js'
import type { DeploymentRecord, OrgScope, SandboxRecord, SnapshotRecord, Store } from '../store/store.js'
import { UNLIMITED_ADMISSION } from './admission.js'
import type { CreationAdmission, CreationTicket } from './admission.js'
import { attributionOf, attributionPatchOf, listQueryOf } from './attribution.js'
import type { AttributionInput, AttributionPatchInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId, randomBase32 } from './ids.js'
import { KeyedMutex } from './keyed-mutex.js'
import type { Log } from './log.js'
import { silentLog } from './log.js'
import { PreviewUrls } from './preview-urls.js'
import { SandboxActivity } from './sandbox-activity.js'
import type { PlatformEvents } from './platform-events.js'
import type { SandboxDisk } from './sandbox-disk.js'
import type { WorkspaceService } from './workspaces.js'
import { runningSandboxDemand } from './quotas.js'
import type { QuotaService } from './quotas.js'

// The Sandbox primitive: a long-lived workspace record whose compute comes and goes.
// States are the documents' own: running, paused, snapshotting, destroyed, plus
// creating and error (with a reason). Lifecycle changes of one sandbox are serialised;
// exec and file operations are not, and resume a paused sandbox transparently.

export interface SandboxDefaults {
  cpu: number
  memoryMb: number
  pidsLimit: number
  timeoutSeconds: number
}

export const DEFAULT_SANDBOX_LIMITS: SandboxDefaults = { cpu: 1, memoryMb: 2048, pidsLimit: 1024, timeoutSeconds: 600 }

export interface CreateSandbox extends AttributionInput {
  template: string
  name?: string | undefined
  workspace_id?: string | undefined
  project_id?: string | undefined
  timeout?: number | undefined
  persistent: boolean
  snapshot_id?: string | undefined
  env?: Record<string, string> | undefined
  /** Develop against this deployment's environment: its runtime env vars are injected. */
  deployment_id?: string | undefined
  environment?: string | undefined
  cpu?: number | undefined
  memory_mb?: number | undefined
  /** false: no connections beyond its workspace network but to egress.allow. */
  allow_internet?: boolean | undefined
  egress?: { allow: string[] } | undefined
}

export interface UpdateSandbox extends AttributionPatchInput {
  name?: string | undefined
  /** Seconds. */
  timeout?: number | undefined
  preview_public?: boolean | undefined
}

export interface ListSandboxes extends ListInput {
  state?: SandboxState | undefined
  template?: string | undefined
  workspace_id?: string | undefined
  project_id?: string | undefined
}

/** States in which a sandbox has compute or a kept filesystem that the platform manages. */
export const LIVE_STATES: readonly SandboxState[] = ['creating', 'running', 'paused', 'snapshotting']

export class SandboxService {
  readonly activity: SandboxActivity
  private readonly resumeHooks = new Set<(record: SandboxRecord) => Promise<void>>()
  /** When each sandbox was last resumed in this process: its servers may still be starting. */
  private readonly resumedAt = new Map<string, number>()
  private readonly locks = new KeyedMutex()
  /** Provisioning in progress in this process, by sandbox id. */
  private readonly provisioning = new Map<string, Promise<void>>()
  /** Template name → its default port (null: none), read once from the runtime. */
  private templates: Promise<Map<string, number | null>> | undefined
  readonly previewUrls: PreviewUrls

  constructor(
    private readonly deps: {
      store: Store
      runtime: RuntimeDriver
      workspaces: WorkspaceService
      /** Creations, forks and resumes are refused (quota_exceeded) past its limits; without it, none is. */
      quotas?: QuotaService | undefined
      defaults?: SandboxDefaults
      log?: Log
      previewUrls?: PreviewUrls
      /** Creations take turns here (admission.ts); default: all at once. */
      admission?: CreationAdmission | undefined
      /** Throws when the deployment has no such environment (environments.ts). */
      ensureEnvironment?: ((scope: OrgScope, deployment: DeploymentRecord, environment: string) => Promise<void>) | undefined
      /** Disk measures shown on GET (sandbox-disk.ts). */
      disk?: SandboxDisk | undefined
      /** Tells every process (the edges' cached addresses) that a sandbox's state or compute changed. */
      events: PlatformEvents
    },
  ) {
    this.previewUrls = deps.previewUrls ?? new PreviewUrls()
    this.activity = new SandboxActivity(async (id, at) => {
      const [row] = await this.deps.store.sandboxes.findByIds([id])
      if (row !== undefined && row.state !== 'destroyed') await this.deps.store.sandboxes.update(scopeOf(row), id, { last_activity_at: at.toISOString() })
    })
  }

  private get log(): Log {
    return this.deps.log ?? silentLog
  }

  private get defaults(): SandboxDefaults {
    return this.deps.defaults ?? DEFAULT_SANDBOX_LIMITS
  }

  // ── create, read ────────────────────────────────────────────────────────────

  /** Records the sandbox as `creating` and starts it; with `wait`, answers once it is running (or failed). */
  async create(organizationId: string, input: CreateSandbox, opts: { wait?: boolean; onProgress?: (p: TemplateProgress) => void } = {}): Promise<Sandbox> {
    const scope = { organization_id: organizationId }
    const snapshot = input.snapshot_id === undefined ? undefined : await this.readySnapshot(scope, input.snapshot_id)
    const workspaceId = snapshot?.workspace_id ?? input.workspace_id ?? (await this.deps.workspaces.defaultId(organizationId))
    if (input.workspace_id !== undefined && (await this.deps.store.workspaces.get(scope, input.workspace_id)) === undefined) {
      throw notFound('workspace', input.workspace_id)
    }
    if (snapshot !== undefined && input.workspace_id !== undefined && input.workspace_id !== snapshot.workspace_id) {
      throw new MiosaError('invalid', 'workspace_id: a sandbox restored from a snapshot stays in the snapshot\'s workspace', {
        details: { field: 'workspace_id' },
      })
    }
    if (input.project_id !== undefined) {
      const project = await this.deps.store.projects.get(scope, input.project_id)
      if (project === undefined) throw notFound('project', input.project_id)
      if (project.workspace_id !== workspaceId) {
        throw new MiosaError('invalid', `project_id: project ${project.id} is in another workspace`, { details: { field: 'project_id' } })
      }
    }
    const template = snapshot?.template ?? input.template
    if (snapshot === undefined) await this.checkTemplate(template)
    const develop = await this.developmentEnvironment(scope, workspaceId, input)

    // A place in the organization's creation queue, or a 429 now, before anything is written.
    const queued = (this.deps.admission ?? UNLIMITED_ADMISSION).enter(organizationId)
    const now = nowIso()
    const base: Omit<SandboxRecord, 'slug'> = {
      id: newId('sandbox'),
      organization_id: organizationId,
      workspace_id: workspaceId,
      project_id: input.project_id ?? null,
      name: input.name ?? (snapshot === undefined ? template : `${snapshot.name} (restored)`),
      template,
      state: 'creating',
      error: null,
      persistent: input.persistent,
      timeout_seconds: input.timeout ?? this.defaults.timeoutSeconds,
      cpu: input.cpu ?? this.defaults.cpu,
      memory_mb: input.memory_mb ?? this.defaults.memoryMb,
      env: input.env ?? {},
      egress: input.allow_internet === false || input.egress !== undefined ? { allow: [...new Set(input.egress?.allow ?? [])] } : null,
      deployment_id: develop?.deploymentId ?? null,
      environment: develop?.environment ?? null,
      snapshot_id: snapshot?.id ?? null,
      forked_from: null,
      runtime_ref: null,
      base_ref: null,
      last_activity_at: now,
      preview_public: false,
      ...attributionOf(input),
      created_at: now,
      updated_at: now,
      destroyed_at: null,
    }
    let ticket = queued
    let record: SandboxRecord
    try {
      record = await this.admit(base, true, () => {
        // A warm pool's container already carries its sandbox id: take that id when one is ready (once the quota admits it).
        const warmId = snapshot === undefined ? this.deps.runtime.reserveWarm?.({ organizationId, workspaceId, template }) : undefined
        if (warmId !== undefined) {
          // A warm container is claimed, not started: it takes no turn (and its reservation cannot expire in the queue).
          queued.cancel()
          ticket = UNLIMITED_ADMISSION.enter(organizationId)
        }
        return this.insertWithSlug({ ...base, id: warmId ?? base.id })
      })
    } catch (error) {
      ticket.cancel()
      throw error
    }
    const provisioned = this.provision(record, snapshot?.runtime_ref?.id, opts.onProgress, ticket)
    if (opts.wait === true) await provisioned
    return this.get(organizationId, record.id)
  }

  /** The deployment environment a new sandbox develops against, checked; undefined when none is named. */
  private async developmentEnvironment(scope: OrgScope, workspaceId: string, input: CreateSandbox): Promise<{ deploymentId: string; environment: string } | undefined> {
    if (input.deployment_id === undefined) {
      if (input.environment === undefined) return undefined
      throw new MiosaError('invalid', 'environment: name the deployment too (deployment_id): env vars belong to a deployment environment', {
        details: { field: 'deployment_id' },
      })
    }
    const deployment = await this.deps.store.deployments.get(scope, input.deployment_id)
    if (deployment === undefined) throw notFound('deployment', input.deployment_id)
    if (deployment.workspace_id !== workspaceId) {
      throw new MiosaError('invalid', `deployment_id: deployment ${deployment.id} is in another workspace`, { details: { field: 'deployment_id' } })
    }
    const environment = input.environment ?? DEFAULT_ENVIRONMENT
    await this.deps.ensureEnvironment?.(scope, deployment, environment)
    return { deploymentId: deployment.id, environment }
  }

  async get(organizationId: string, id: string): Promise<Sandbox> {
    return this.toWire(await this.record({ organization_id: organizationId }, id))
  }

  async list(organizationId: string, input: ListSandboxes): Promise<Page<Sandbox>> {
    const scope = { organization_id: organizationId }
    if (input.workspace_id !== undefined && (await this.deps.store.workspaces.get(scope, input.workspace_id)) === undefined) {
      throw notFound('workspace', input.workspace_id)
    }
    if (input.project_id !== undefined && (await this.deps.store.projects.get(scope, input.project_id)) === undefined) {
      throw notFound('project', input.project_id)
    }
    const where = {
      workspace_id: input.workspace_id,
      project_id: input.project_id,
      template: input.template,
      state: input.state,
    }
    const page = await this.deps.store.sandboxes.list(scope, listQueryOf<SandboxRecord>(input, where))
    // Destroyed sandboxes are listed only when asked for by state.
    const data = input.state === undefined ? page.data.filter((s) => s.state !== 'destroyed') : page.data
    const domains = new Map<string, Promise<string | undefined>>()
    const domainOf = (record: SandboxRecord) => {
      let domain = domains.get(record.workspace_id)
      if (domain === undefined) domains.set(record.workspace_id, (domain = this.tenantDomainOf(record)))
      return domain
    }
    return { data: await Promise.all(data.map((s) => this.toWire(s, domainOf(s)))), next_cursor: page.next_cursor }
  }

  /** Renames it, changes its idle timeout, its attribution, or whether its previews are public. */
  async patch(organizationId: string, id: string, input: UpdateSandbox): Promise<Sandbox> {
    const record = await this.record({ organization_id: organizationId }, id)
    this.expectNotDestroyed(record)
    const patch: Partial<SandboxRecord> = {
      ...attributionPatchOf(input),
      ...(input.name === undefined ? {} : { name: input.name }),
      ...(input.timeout === undefined ? {} : { timeout_seconds: input.timeout }),
      ...(input.preview_public === undefined ? {} : { preview_public: input.preview_public }),
    }
    if (Object.keys(patch).length === 0) return this.toWire(record)
    const updated = await this.update(record, patch)
    if (input.preview_public !== undefined && input.preview_public !== record.preview_public) {
      this.log.info({ sandbox_id: id, preview_public: input.preview_public }, 'sandbox preview visibility changed')
    }
    return this.toWire(updated)
  }

  // ── previews ────────────────────────────────────────────────────────────────

  /** The URL of a port of the sandbox (default: its template's default port). */
  async previewUrl(organizationId: string, id: string, port?: number): Promise<PreviewUrl> {
    const record = await this.record({ organization_id: organizationId }, id)
    this.expectNotDestroyed(record)
    const chosen = port ?? (await this.defaultPort(record.template))
    if (chosen === undefined) {
      throw new MiosaError('invalid', `port: template ${record.template} has no default port; name one with ?port=`, { details: { field: 'port' } })
    }
    const url = await this.previewUrlFor(record, chosen)
    return { url: url as string, port: chosen, public: record.preview_public }
  }

  /**
   * The preview URL of a port (null: the template's default port) of a sandbox, at its
   * workspace's verified preview domain when it has one; undefined when no port is named
   * and the template has no default.
   */
  async previewUrlFor(record: SandboxRecord, port: number | null, tenantDomain?: Promise<string | undefined>): Promise<string | undefined> {
    const chosen = port ?? (await this.defaultPort(record.template))
    if (chosen === undefined) return undefined
    return this.previewUrls.url(record.slug, chosen, await (tenantDomain ?? this.tenantDomainOf(record)))
  }

  /** The template's default port; undefined when it has none (or the runtime cannot say right now). */
  async defaultPort(template: string): Promise<number | undefined> {
    const templates = await this.templateInfo().catch((error: unknown) => {
      this.log.warn({ err: error }, 'listing templates failed: no default preview port')
      return new Map<string, number | null>()
    })
    return templates.get(template) ?? undefined
  }

  /** The workspace's preview domain, once verified. */
  private async tenantDomainOf(record: SandboxRecord): Promise<string | undefined> {
    const settings = await this.deps.store.tenantSettings.get(scopeOf(record), record.workspace_id)
    if (settings === undefined || settings.preview_domain === null || settings.preview_domain_verified_at === null) return undefined
    return settings.preview_domain
  }

  // ── lifecycle ───────────────────────────────────────────────────────────────

  async stop(organizationId: string, id: string): Promise<Sandbox> {
    const scope = { organization_id: organizationId }
    await this.settle(scope, id)
    return this.locks.run(id, async () => {
      const record = await this.record(scope, id)
      if (record.state === 'paused') return this.toWire(record)
      this.expectState(record, ['running'], 'stop')
      await this.deps.runtime.stop(this.refOf(record))
      return this.toWire(await this.update(record, { state: 'paused' }))
    })
  }

  async resume(organizationId: string, id: string): Promise<Sandbox> {
    return this.toWire(await this.ensureRunning({ organization_id: organizationId }, id))
  }

  async destroy(organizationId: string, id: string): Promise<Sandbox> {
    const scope = { organization_id: organizationId }
    const record = await this.record(scope, id)
    if (record.state === 'creating') {
      // Let provisioning finish first, so its container is known and removed with the rest.
      await this.provisioning.get(id)?.catch(() => { /* its failure is logged and recorded on the sandbox by provisioning itself */ })
    }
    return this.locks.run(id, async () => {
      const current = await this.record(scope, id)
      if (current.state === 'destroyed') return this.toWire(current)
      return this.toWire(await this.destroyLocked(current))
    })
  }

  /** Resets the idle timer (and optionally the timeout). Counts as activity. */
  async keepAlive(organizationId: string, id: string, timeoutSeconds?: number): Promise<Sandbox> {
    const scope = { organization_id: organizationId }
    const record = await this.record(scope, id)
    this.expectNotDestroyed(record)
    this.activity.touch(id)
    const patch = { last_activity_at: nowIso(), ...(timeoutSeconds === undefined ? {} : { timeout_seconds: timeoutSeconds }) }
    return this.toWire(await this.update(record, patch))
  }

  // ── snapshots and fork ──────────────────────────────────────────────────────

  async snapshot(organizationId: string, id: string, input: { name?: string | undefined } & AttributionInput): Promise<Snapshot> {
    const scope = { organization_id: organizationId }
    await this.settle(scope, id)
    return this.locks.run(id, async () => {
      const record = await this.record(scope, id)
      this.expectState(record, ['running', 'paused'], 'snapshot')
      const now = nowIso()
      const snapshot: SnapshotRecord = {
        id: newId('snapshot'),
        organization_id: organizationId,
        workspace_id: record.workspace_id,
        sandbox_id: record.id,
        name: input.name ?? `${record.name} ${now}`,
        state: 'creating',
        error: null,
        size_bytes: null,
        template: record.template,
        runtime_ref: null,
        ...attributionOf(input),
        created_at: now,
        updated_at: now,
      }
      const insert = () => this.deps.store.snapshots.insert(snapshot)
      await (this.deps.quotas === undefined ? insert() : this.deps.quotas.admit(record, { storage: true }, insert))
      const ref = await this.whileSnapshotting(record, () => this.deps.runtime.snapshot(this.refOf(record), snapshot.id)).catch(
        async (error: unknown) => {
          await this.deps.store.snapshots.update(scope, snapshot.id, { state: 'failed', error: reasonOf(error), updated_at: nowIso() })
          throw error
        },
      )
      const ready = await this.deps.store.snapshots.update(scope, snapshot.id, {
        state: 'ready',
        runtime_ref: { driver: ref.driver, id: ref.id },
        size_bytes: ref.sizeBytes,
        updated_at: nowIso(),
      })
      this.log.info({ sandbox_id: id, snapshot_id: snapshot.id, size_bytes: ref.sizeBytes }, 'sandbox snapshot taken')
      return publicSnapshot(ready ?? snapshot)
    })
  }

  async listSnapshots(organizationId: string, sandboxId: string, input: ListInput): Promise<Page<Snapshot>> {
    const scope = { organization_id: organizationId }
    await this.record(scope, sandboxId)
    const page = await this.deps.store.snapshots.list(scope, listQueryOf<SnapshotRecord>(input, { sandbox_id: sandboxId }))
    return { data: page.data.map(publicSnapshot), next_cursor: page.next_cursor }
  }

  async getSnapshot(organizationId: string, snapshotId: string): Promise<Snapshot> {
    const snapshot = await this.deps.store.snapshots.get({ organization_id: organizationId }, snapshotId)
    if (snapshot === undefined) throw notFound('snapshot', snapshotId)
    return publicSnapshot(snapshot)
  }

  /** Deletes a snapshot; one that sandboxes were created from and still use is a 409. */
  async deleteSnapshot(organizationId: string, snapshotId: string): Promise<void> {
    const scope = { organization_id: organizationId }
    const snapshot = await this.deps.store.snapshots.get(scope, snapshotId)
    if (snapshot === undefined) throw notFound('snapshot', snapshotId)
    const users = (await this.deps.store.sandboxes.find(scope, { snapshot_id: snapshotId })).filter((s) => s.state !== 'destroyed')
    if (users.length > 0) {
      throw new MiosaError('conflict', `snapshot ${snapshotId} is in use by ${users.length} sandbox(es); destroy them first`, {
        details: { sandboxes: users.map((s) => s.id) },
      })
    }
    if (snapshot.runtime_ref !== null) await this.deps.runtime.deleteSnapshot({ ...snapshot.runtime_ref, sizeBytes: snapshot.size_bytes })
    await this.deps.store.snapshots.delete(scope, snapshotId)
  }

  /** A new sandbox from the current state of this one, which is left untouched. */
  async fork(organizationId: string, id: string, input: { name?: string | undefined } & AttributionInput): Promise<Sandbox> {
    const scope = { organization_id: organizationId }
    await this.settle(scope, id)
    const forkId = newId('sandbox')
    // A fork starts a container as a create does: it takes its turn the same way (or a 429 before any snapshot).
    const ticket = (this.deps.admission ?? UNLIMITED_ADMISSION).enter(organizationId)
    let forked: { record: SandboxRecord; image: string }
    try {
      forked = await this.forkRecord(scope, id, forkId, input)
    } catch (error) {
      ticket.cancel()
      throw error
    }
    await this.provision(forked.record, forked.image, undefined, ticket)
    return this.get(organizationId, forked.record.id)
  }

  /** The fork's snapshot of its source, and its record (`creating`). */
  private async forkRecord(scope: OrgScope, id: string, forkId: string, input: { name?: string | undefined } & AttributionInput): Promise<{ record: SandboxRecord; image: string }> {
    const { source, image } = await this.locks.run(id, async () => {
      const record = await this.record(scope, id)
      this.expectState(record, ['running', 'paused'], 'fork')
      const ref = await this.whileSnapshotting(record, () => this.deps.runtime.snapshot(this.refOf(record), `fork-${forkId}`))
      return { source: record, image: ref }
    })
    const now = nowIso()
    const record = await this.admit(source, true, () => this.insertWithSlug({
      ...source,
      id: forkId,
      name: input.name ?? `${source.name} (fork)`,
      state: 'creating',
      error: null,
      forked_from: source.id,
      runtime_ref: null,
      base_ref: { driver: image.driver, id: image.id },
      last_activity_at: now,
      // A new sandbox starts private, whatever its source was.
      preview_public: false,
      ...attributionOf({ ...pickAttribution(source), ...input }),
      created_at: now,
      updated_at: now,
      destroyed_at: null,
    })).catch(async (error: unknown) => {
      // Refused (a quota) or not recorded: the fork's image has nobody to use it.
      await this.deps.runtime.deleteSnapshot({ ...image, sizeBytes: null }).catch((err: unknown) => this.log.warn({ snapshot: image.id, err }, 'could not remove the image of a fork that was not made'))
      throw error
    })
    return { record, image: image.id }
  }

  // ── used by operations, the reaper and the reconciler ───────────────────────

  /** The sandbox with compute attached: a paused one is resumed first, a creating one awaited. */
  async ensureRunning(scope: OrgScope, id: string): Promise<SandboxRecord> {
    await this.settle(scope, id)
    const quick = await this.record(scope, id)
    if (quick.state === 'running' && quick.runtime_ref !== null) return quick
    return this.locks.run(id, async () => {
      const record = await this.record(scope, id)
      if (record.state === 'running') return record
      this.expectState(record, ['paused'], 'resume')
      const resumed = await this.admit(record, false, async () => {
        await (this.deps.admission ?? UNLIMITED_ADMISSION).ahead(() => this.deps.runtime.resume(this.refOf(record), { egress: record.egress }))
        this.activity.touch(id)
        return this.update(record, { state: 'running', last_activity_at: nowIso() })
      })
      this.resumedAt.set(id, Date.now())
      this.log.info({ sandbox_id: id }, 'sandbox resumed')
      for (const hook of this.resumeHooks) {
        await hook(resumed).catch((error: unknown) => this.log.warn({ sandbox_id: id, err: error }, 'after resume: a hook failed'))
      }
      return resumed
    })
  }

  /** Stops (persistent) or destroys an idle sandbox, unless it was used or opened since the reaper looked. */
  async expire(record: SandboxRecord, now: number): Promise<void> {
    await this.locks.run(record.id, async () => {
      const current = await this.deps.store.sandboxes.get(scopeOf(record), record.id)
      if (current === undefined || current.state !== 'running' || !this.isIdle(current, now)) return
      if (current.persistent) {
        await this.deps.runtime.stop(this.refOf(current))
        await this.update(current, { state: 'paused' })
        this.log.info({ sandbox_id: current.id, timeout_seconds: current.timeout_seconds }, 'idle sandbox stopped (persistent)')
      } else {
        await this.destroyLocked(current)
        this.log.info({ sandbox_id: current.id, timeout_seconds: current.timeout_seconds }, 'idle sandbox destroyed (non-persistent)')
      }
    })
  }

  isIdle(record: SandboxRecord, now: number): boolean {
    if (this.activity.isHeld(record.id)) return false
    return now - this.activity.lastUse(record.id, record.last_activity_at) >= record.timeout_seconds * 1000
  }

  /** True while this process is still creating the sandbox (the reconciler leaves it alone). */
  isProvisioning(id: string): boolean {
    return this.provisioning.has(id)
  }

  /** Runs `fn` under the sandbox's lifecycle lock (for the reconciler). */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn)
  }

  async update(record: SandboxRecord, patch: Partial<SandboxRecord>): Promise<SandboxRecord> {
    const updated = await this.deps.store.sandboxes.update(scopeOf(record), record.id, { ...patch, updated_at: nowIso() })
    if (updated === undefined) throw notFound('sandbox', record.id)
    if (patch.state !== undefined || patch.runtime_ref !== undefined) await this.deps.events.publish({ type: 'sandbox.changed', sandboxId: record.id })
    return updated
  }

  /** Runs `hook` each time a sandbox resumes, before the resume answers (under its lifecycle lock: the hook must not resume it again). */
  onResume(hook: (record: SandboxRecord) => Promise<void>): void {
    this.resumeHooks.add(hook)
  }

  /** True when this process resumed the sandbox in the last `ms`: what it runs may still be starting. */
  resumedWithin(id: string, ms: number): boolean {
    const at = this.resumedAt.get(id)
    if (at === undefined) return false
    if (Date.now() - at < ms) return true
    this.resumedAt.delete(id)
    return false
  }

  /** Calls `listener` with the sandbox id whenever a sandbox's state or compute changes, in this process or another (caches drop it). */
  onChange(listener: (sandboxId: string) => void): () => void {
    return this.deps.events.subscribe((event) => {
      if (event.type === 'sandbox.changed') listener(event.sandboxId)
    })
  }

  async record(scope: OrgScope, id: string): Promise<SandboxRecord> {
    const record = await this.deps.store.sandboxes.get(scope, id)
    if (record === undefined) throw notFound('sandbox', id)
    return record
  }

  refOf(record: SandboxRecord): RuntimeRef {
    if (record.runtime_ref === null) throw new MiosaError('conflict', `sandbox ${record.id} has no compute attached (state ${record.state})`)
    return record.runtime_ref
  }

  async toWire(record: SandboxRecord, tenantDomain?: Promise<string | undefined>): Promise<Sandbox> {
    const { env, runtime_ref: _ref, base_ref: _base, destroyed_at: _destroyed, ...rest } = record
    const lastUse = this.activity.lastUse(record.id, record.last_activity_at)
    const previews: Record<string, string> = {}
    if (LIVE_STATES.includes(record.state)) {
      const port = await this.defaultPort(record.template)
      if (port !== undefined) previews[String(port)] = (await this.previewUrlFor(record, port, tenantDomain)) as string
    }
    return {
      ...rest,
      last_activity_at: new Date(lastUse).toISOString(),
      env_keys: Object.keys(env).sort(),
      allow_internet: record.egress === null,
      disk: this.deps.disk?.usageOf(record) ?? null,
      expires_at: record.state === 'running' ? new Date(lastUse + record.timeout_seconds * 1000).toISOString() : null,
      previews,
    }
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private provision(record: SandboxRecord, fromImage: string | undefined, onProgress?: (p: TemplateProgress) => void, ticket?: CreationTicket): Promise<void> {
    const work = (async () => {
      let ref: RuntimeRef | undefined
      try {
        ref = await (ticket ?? UNLIMITED_ADMISSION.enter(record.organization_id)).run(() => this.deps.runtime.createSandbox(
          {
            sandboxId: record.id,
            organizationId: record.organization_id,
            workspaceId: record.workspace_id,
            template: record.template,
            fromSnapshot: fromImage,
            cpu: record.cpu,
            memoryMb: record.memory_mb,
            pidsLimit: this.defaults.pidsLimit,
            egress: record.egress,
          },
          onProgress === undefined ? {} : { onProgress },
        ))
        const created = ref
        await this.locks.run(record.id, async () => {
          const current = await this.record(scopeOf(record), record.id)
          if (current.state === 'destroyed') {
            // Destroyed while it was being created: nothing may be left running.
            await this.deps.runtime.destroy(created)
            return
          }
          this.activity.touch(record.id)
          await this.update(current, { state: 'running', runtime_ref: { driver: created.driver, id: created.id }, last_activity_at: nowIso() })
          this.log.info({ sandbox_id: record.id, template: record.template }, 'sandbox running')
        })
      } catch (error) {
        this.log.warn({ sandbox_id: record.id, err: error }, 'sandbox creation failed')
        if (ref !== undefined) await this.deps.runtime.destroy(ref).catch((err: unknown) => this.log.warn({ sandbox_id: record.id, err }, 'could not remove the container of a failed sandbox'))
        const current = await this.deps.store.sandboxes.get(scopeOf(record), record.id)
        if (current !== undefined && current.state === 'creating') await this.update(current, { state: 'error', error: reasonOf(error) })
      }
    })()
    this.provisioning.set(record.id, work)
    void work.finally(() => this.provisioning.delete(record.id))
    return work
  }

  private async destroyLocked(record: SandboxRecord): Promise<SandboxRecord> {
    if (record.runtime_ref !== null) await this.deps.runtime.destroy(record.runtime_ref)
    if (record.base_ref !== null) {
      // A fork's private image: other forks may have been made from it, so failing to remove it is fine.
      await this.deps.runtime.deleteSnapshot({ ...record.base_ref, sizeBytes: null }).catch(() => { /* see above */ })
    }
    this.activity.forget(record.id)
    this.resumedAt.delete(record.id)
    const destroyed = await this.update(record, { state: 'destroyed', destroyed_at: nowIso() })
    this.log.info({ sandbox_id: record.id }, 'sandbox destroyed')
    return destroyed
  }

  /** Shows `snapshotting` while `fn` runs, then the state it had before. */
  private async whileSnapshotting<T>(record: SandboxRecord, fn: () => Promise<T>): Promise<T> {
    await this.update(record, { state: 'snapshotting' })
    try {
      return await fn()
    } finally {
      await this.update(record, { state: record.state })
    }
  }

  /** Waits out a creation this process is running, so callers see its outcome. */
  private async settle(scope: OrgScope, id: string): Promise<void> {
    const pending = this.provisioning.get(id)
    if (pending !== undefined) {
      await this.record(scope, id) // scope check first: never wait on another organization's sandbox
      await pending.catch(() => { /* its failure is logged and recorded on the sandbox by provisioning itself */ })
    }
  }

  private expectState(record: SandboxRecord, allowed: readonly SandboxState[], action: string): void {
    if (allowed.includes(record.state)) return
    const why = record.state === 'error' && record.error !== null ? ` (${record.error})` : ''
    throw new MiosaError('conflict', `cannot ${action} sandbox ${record.id}: it is ${record.state}${why}`, {
      details: { state: record.state },
    })
  }

  private expectNotDestroyed(record: SandboxRecord): void {
    if (record.state === 'destroyed') throw new MiosaError('conflict', `sandbox ${record.id} is destroyed`, { details: { state: 'destroyed' } })
  }

  /** Runs `write` (which makes the sandbox run, and exist when `isNew`) once its organization's and workspace's quotas have room. */
  private admit<T>(record: Pick<SandboxRecord, 'organization_id' | 'workspace_id' | 'cpu' | 'memory_mb'>, isNew: boolean, write: () => Promise<T>): Promise<T> {
    return this.deps.quotas === undefined ? write() : this.deps.quotas.admit(record, runningSandboxDemand(record, isNew), write)
  }

  private async insertWithSlug(base: Omit<SandboxRecord, 'slug'>): Promise<SandboxRecord> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.deps.store.sandboxes.insert({ ...base, slug: randomBase32(8) })
      } catch (error) {
        const clash = error instanceof MiosaError && (error.details as { field?: string } | undefined)?.field === 'slug'
        if (!clash || attempt >= 5) throw error
      }
    }
  }

  private async readySnapshot(scope: OrgScope, id: string): Promise<SnapshotRecord> {
    const snapshot = await this.deps.store.snapshots.get(scope, id)
    if (snapshot === undefined) throw notFound('snapshot', id)
    if (snapshot.state !== 'ready' || snapshot.runtime_ref === null) {
      throw new MiosaError('conflict', `snapshot ${id} is ${snapshot.state}, not ready`, { details: { state: snapshot.state } })
    }
    return snapshot
  }

  /** The runtime's templates, read once (a failed read is retried next time). */
  private templateInfo(): Promise<Map<string, number | null>> {
    this.templates ??= this.deps.runtime.listTemplates().then((ts) => new Map(ts.map((t) => [t.name, t.default_port])))
    return this.templates.catch((error: unknown) => {
      this.templates = undefined
      throw error
    })
  }

  private async checkTemplate(name: string): Promise<void> {
    const names = [...(await this.templateInfo()).keys()]
    if (!names.includes(name)) {
      throw new MiosaError('invalid', `template: unknown template "${name}"; one of ${names.join(', ')}`, { details: { field: 'template' } })
    }
  }
}

export function scopeOf(record: { organization_id: string }): OrgScope {
  return { organization_id: record.organization_id }
}

function publicSnapshot(record: SnapshotRecord): Snapshot {
  const { runtime_ref: _ref, ...snapshot } = record
  return snapshot
}

function pickAttribution(record: SandboxRecord): AttributionInput {
  return {
    ...(record.external_user_id === null ? {} : { external_user_id: record.external_user_id }),
    ...(record.external_project_id === null ? {} : { external_project_id: record.external_project_id }),
    ...(record.external_workspace_id === null ? {} : { external_workspace_id: record.external_workspace_id }),
    metadata: record.metadata,
  }
}

/** A reason fit to show the sandbox's owner: our own messages, never a stack or internals. */
function reasonOf(error: unknown): string {
  if (error instanceof MiosaError) return error.message
  return error instanceof Error ? error.message.slice(0, 500) : 'unknown error'
}
