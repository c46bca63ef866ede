import type { LimitsPatch, LimitsReport, QuotaLimits, QuotaOverrides, QuotaResource } from '../schemas/quotas.js'
import { QUOTA_RESOURCES } from '../schemas/quotas.js'
import type { OrgScope, QuotaUsagePart, QuotaUsageRecord, Store } from '../store/store.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { KeyedMutex } from './keyed-mutex.js'

// Quotas per organization, with per-workspace overrides. A creation asks `admit` with what
// it adds (a demand); the check and the reservation of that demand run under the
// organization's lock, so concurrent creations are counted one after another and never
// all see the same free room. The reservation is held until the caller's write has landed
// (then the store counts it), so it is never counted twice for long, nor missed.
// The lock is in this process: several API processes on one database can each admit up
// to the limit at the same instant (a fleet's API is one process today).

/** Generous on one machine: an operator narrows them with flags (MIOSA_QUOTA_*). */
export const DEFAULT_QUOTA_LIMITS: QuotaLimits = {
  running_sandboxes: 100,
  sandboxes: 1000,
  vcpus: 256,
  memory_mb: 524_288,
  concurrent_builds: 16,
  storage_gb: 1000,
  deployments: 1000,
  computers: 20,
  docker_deploy_hosts: 20,
}

/** What a write adds. `storage` asks only for room: its size is known once it is written. */
export type QuotaDemand = Partial<Record<Exclude<QuotaResource, 'storage_gb' | 'computers' | 'docker_deploy_hosts'>, number>> & {
  storage?: boolean
}

export interface QuotaSubject {
  organization_id: string
  workspace_id: string
}

/** What counts towards vcpus and memory_mb per runtime instance (instances have no size of their own). */
export interface InstanceSize {
  cpu: number
  memoryMb: number
}

const GIB = 1024 ** 3

/** What a sandbox adds when it starts running (and, when new, when it comes to exist). */
export function runningSandboxDemand(sandbox: { cpu: number; memory_mb: number }, isNew: boolean): QuotaDemand {
  return { running_sandboxes: 1, sandboxes: isNew ? 1 : 0, vcpus: sandbox.cpu, memory_mb: sandbox.memory_mb }
}

/** What the counts leave out, shown with every report. */
export const USAGE_NOTES = [
  'storage_gb counts ready snapshots and the releases versions reference; data services, build caches and sandbox disks are not counted',
  'computers and docker_deploy_hosts do not exist yet: their limits are stored, their use is 0',
]

interface Reservation {
  workspace_id: string
  demand: QuotaDemand
}

export class QuotaService {
  private readonly locks = new KeyedMutex()
  /** Demands admitted whose writes have not landed yet, by organization. */
  private readonly reserved = new Map<string, Set<Reservation>>()

  constructor(
    private readonly deps: {
      store: Store
      defaults?: QuotaLimits | undefined
      /** false: nothing is checked (use and limits are still reported). */
      enabled?: boolean | undefined
      instanceSize?: InstanceSize | undefined
    },
  ) {}

  private get defaults(): QuotaLimits {
    return this.deps.defaults ?? DEFAULT_QUOTA_LIMITS
  }

  /**
   * Runs `write` if what it adds fits the organization's limits and, where the workspace
   * overrides one, the workspace's; otherwise throws quota_exceeded and `write` never runs.
   */
  async admit<T>(subject: QuotaSubject, demand: QuotaDemand, write: () => Promise<T>): Promise<T> {
    if (this.deps.enabled === false) return write()
    const org = subject.organization_id
    const reservation: Reservation = { workspace_id: subject.workspace_id, demand }
    await this.locks.run(org, async () => {
      const scope = { organization_id: org }
      const { organization: orgOverrides, workspace: wsOverrides } = await this.deps.store.quotas.getLimitsOf(scope, subject.workspace_id)
      const orgLimits = { ...this.defaults, ...orgOverrides }
      const pending = [...(this.reserved.get(org) ?? [])]
      const parts = partsOf(demanded(demand))
      this.check(demand, orgLimits, await this.used(scope, undefined, pending, parts), { organization_id: org })
      const wsLimits = demanded(demand).filter((r) => wsOverrides[r] !== undefined)
      if (wsLimits.length > 0) {
        const mine = pending.filter((p) => p.workspace_id === subject.workspace_id)
        this.check(demand, wsOverrides, await this.used(scope, subject.workspace_id, mine, partsOf(wsLimits)), subject, wsLimits)
      }
      let set = this.reserved.get(org)
      if (set === undefined) this.reserved.set(org, (set = new Set()))
      set.add(reservation)
    })
    try {
      return await write()
    } finally {
      const set = this.reserved.get(org)
      set?.delete(reservation)
      if (set?.size === 0) this.reserved.delete(org)
    }
  }

  /** What `count` more runtime instances add. */
  instancesDemand(count: number): QuotaDemand {
    const size = this.deps.instanceSize ?? { cpu: 1, memoryMb: 512 }
    return { vcpus: count * size.cpu, memory_mb: count * size.memoryMb }
  }

  /** The organization's limits (and where each comes from) with its current use. */
  async organizationReport(organizationId: string): Promise<LimitsReport> {
    const scope = { organization_id: organizationId }
    if ((await this.deps.store.organizations.get({}, organizationId)) === undefined) throw notFound('organization', organizationId)
    const overrides = await this.deps.store.quotas.getLimits(scope, null)
    const use = this.useOf(await this.deps.store.quotas.usage(scope))
    const resources = Object.fromEntries(
      QUOTA_RESOURCES.map((r) => [r, { limit: overrides[r] ?? this.defaults[r], used: use[r], source: overrides[r] === undefined ? 'platform' : 'organization' }]),
    )
    return { organization_id: organizationId, workspace_id: null, resources: resources as LimitsReport['resources'], notes: USAGE_NOTES }
  }

  /** A workspace's limits: its own where it overrides one, else the organization's (which also bind it). */
  async workspaceReport(organizationId: string, workspaceId: string): Promise<LimitsReport> {
    const scope = { organization_id: organizationId }
    if ((await this.deps.store.workspaces.get(scope, workspaceId)) === undefined) throw notFound('workspace', workspaceId)
    const org = await this.organizationReport(organizationId)
    const overrides = await this.deps.store.quotas.getLimits(scope, workspaceId)
    const use = this.useOf(await this.deps.store.quotas.usage(scope, workspaceId))
    const resources = Object.fromEntries(
      QUOTA_RESOURCES.map((r) => {
        const own = overrides[r]
        const above = org.resources[r]
        return [r, own !== undefined && own < above.limit ? { limit: own, used: use[r], source: 'workspace' } : { limit: above.limit, used: use[r], source: above.source }]
      }),
    )
    return { organization_id: organizationId, workspace_id: workspaceId, resources: resources as LimitsReport['resources'], notes: USAGE_NOTES }
  }

  /** The root key's change of an organization's limits; null returns one to the platform default. */
  async setOrganizationLimits(organizationId: string, patch: LimitsPatch): Promise<LimitsReport> {
    const scope = { organization_id: organizationId }
    if ((await this.deps.store.organizations.get({}, organizationId)) === undefined) throw notFound('organization', organizationId)
    await this.locks.run(organizationId, async () => {
      const current = await this.deps.store.quotas.getLimits(scope, null)
      await this.deps.store.quotas.setLimits(scope, null, applyPatch(current, patch), nowIso())
    })
    return this.organizationReport(organizationId)
  }

  /**
   * An organization's change of one of its workspaces' limits, within its own: a value above
   * the organization's limit is refused (400) and nothing changes. Null returns one to the
   * organization's.
   */
  async setWorkspaceLimits(organizationId: string, workspaceId: string, patch: LimitsPatch): Promise<void> {
    const scope = { organization_id: organizationId }
    if ((await this.deps.store.workspaces.get(scope, workspaceId)) === undefined) throw notFound('workspace', workspaceId)
    await this.locks.run(organizationId, async () => {
      const orgLimits = { ...this.defaults, ...(await this.deps.store.quotas.getLimits(scope, null)) }
      for (const r of QUOTA_RESOURCES) {
        const value = patch[r]
        if (value !== undefined && value !== null && value > orgLimits[r]) {
          throw new MiosaError('invalid', `limits.${r}: ${value} is above your organization's limit of ${orgLimits[r]}; a workspace's limits stay within its organization's`, {
            details: { field: `limits.${r}`, resource: r, limit: value, organization_limit: orgLimits[r] },
          })
        }
      }
      const current = await this.deps.store.quotas.getLimits(scope, workspaceId)
      await this.deps.store.quotas.setLimits(scope, workspaceId, applyPatch(current, patch), nowIso())
    })
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private check(demand: QuotaDemand, limits: Partial<QuotaLimits>, used: Record<QuotaResource, number>, subject: { organization_id: string; workspace_id?: string }, only?: readonly QuotaResource[]): void {
    for (const resource of only ?? demanded(demand)) {
      const limit = limits[resource]
      if (limit === undefined) continue
      const adds = resource === 'storage_gb' ? 0 : (demand[resource as keyof QuotaDemand] as number)
      // Storage asks for room: refused once use has reached the limit.
      const over = resource === 'storage_gb' ? used[resource] >= limit : used[resource] + adds > limit
      if (!over) continue
      const whose = subject.workspace_id === undefined ? `organization ${subject.organization_id}` : `workspace ${subject.workspace_id}`
      throw new MiosaError('quota_exceeded', `quota exceeded: ${resource} of ${whose} is limited to ${limit} and ${used[resource]} is in use${adds > 0 ? ` (this needs ${adds} more)` : ''}`, {
        details: { resource, limit, current: used[resource], requested: adds, ...subject },
      })
    }
  }

  /** Use as counted by the store plus what is admitted but not written yet. */
  private async used(scope: OrgScope, workspaceId: string | undefined, pending: readonly Reservation[], parts: ReadonlySet<QuotaUsagePart>): Promise<Record<QuotaResource, number>> {
    const use = this.useOf(await this.deps.store.quotas.usage(scope, workspaceId, parts))
    for (const { demand } of pending) {
      for (const r of demanded(demand)) if (r !== 'storage_gb') use[r] += demand[r as keyof QuotaDemand] as number
    }
    return use
  }

  private useOf(usage: QuotaUsageRecord): Record<QuotaResource, number> {
    const size = this.deps.instanceSize ?? { cpu: 1, memoryMb: 512 }
    // Instances asked for count before they start; during a rollout, old and new both run.
    const instances = Math.max(usage.instances, usage.desired_instances)
    return {
      running_sandboxes: usage.running_sandboxes,
      sandboxes: usage.sandboxes,
      vcpus: round(usage.sandbox_vcpus + instances * size.cpu),
      memory_mb: usage.sandbox_memory_mb + instances * size.memoryMb,
      concurrent_builds: usage.builds,
      storage_gb: round((usage.snapshot_bytes + usage.release_bytes) / GIB),
      deployments: usage.deployments,
      computers: 0,
      docker_deploy_hosts: 0,
    }
  }
}

/** Which tables count towards each resource. */
const PARTS: Record<QuotaResource, readonly QuotaUsagePart[]> = {
  running_sandboxes: ['sandboxes'],
  sandboxes: ['sandboxes'],
  vcpus: ['sandboxes', 'instances'],
  memory_mb: ['sandboxes', 'instances'],
  concurrent_builds: ['builds'],
  storage_gb: ['storage'],
  deployments: ['deployments'],
  computers: [],
  docker_deploy_hosts: [],
}

function partsOf(resources: readonly QuotaResource[]): ReadonlySet<QuotaUsagePart> {
  return new Set(resources.flatMap((r) => PARTS[r]))
}

/** The resources a demand touches. */
function demanded(demand: QuotaDemand): QuotaResource[] {
  const out: QuotaResource[] = []
  for (const [key, value] of Object.entries(demand)) {
    if (key === 'storage') {
      if (value === true) out.push('storage_gb')
    } else if (typeof value === 'number' && value > 0) {
      out.push(key as QuotaResource)
    }
  }
  return out
}

function applyPatch(current: QuotaOverrides, patch: LimitsPatch): QuotaOverrides {
  const next: QuotaOverrides = { ...current }
  for (const r of QUOTA_RESOURCES) {
    const value = patch[r]
    if (value === null) delete next[r]
    else if (value !== undefined) next[r] = value
  }
  return next
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000
}
