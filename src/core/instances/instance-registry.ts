import type { InstanceAddress } from '../../runtime/instance-driver.js'
import type { RuntimeRef } from '../../runtime/runtime-driver.js'
import type { HealthCheck } from '../../schemas/deployments.js'
import type { InstanceRecord } from '../../store/store.js'

// The instances this process manages (a worker's view): their containers, health-check
// bookkeeping and whether they drain. What serves is read from the store by the edge
// (instance-targets.ts); this is for rollouts, the reconciler and health checks.

/** An instance this process manages. */
export interface Tracked {
  record: InstanceRecord
  ref: RuntimeRef
  address: InstanceAddress
  /** Its environment (envKey). */
  key: string
  health: HealthCheck
  startedAt: number
  nextCheckAt: number
  failures: number
  checking: boolean
  draining: boolean
}

export function envKey(deploymentId: string, environment: string): string {
  return `${deploymentId}\u0000${environment}`
}

export class InstanceRegistry {
  private readonly tracked = new Map<string, Tracked>()
  /** The same, by environment. */
  private readonly byEnv = new Map<string, Set<Tracked>>()
  /** Instances being stopped: their containers still run for a moment and must not look like survivors to adopt. */
  readonly stopping = new Set<string>()

  add(record: InstanceRecord, ref: RuntimeRef, address: InstanceAddress, health: HealthCheck): Tracked {
    const t: Tracked = {
      record,
      ref,
      address,
      key: envKey(record.deployment_id, record.environment),
      health,
      startedAt: Date.now(),
      nextCheckAt: Date.now(),
      failures: 0,
      checking: false,
      draining: false,
    }
    this.tracked.set(record.id, t)
    let same = this.byEnv.get(t.key)
    if (same === undefined) this.byEnv.set(t.key, (same = new Set()))
    same.add(t)
    return t
  }

  delete(t: Tracked): void {
    this.tracked.delete(t.record.id)
    const same = this.byEnv.get(t.key)
    same?.delete(t)
    if (same?.size === 0) this.byEnv.delete(t.key)
  }

  has(id: string): boolean {
    return this.tracked.has(id)
  }

  /** Every tracked instance, as a copy (callers start and stop some while going through them). */
  all(): Tracked[] {
    return [...this.tracked.values()]
  }

  /** The environment's tracked instances, as a copy. */
  inEnv(key: string): Tracked[] {
    return [...(this.byEnv.get(key) ?? [])]
  }

  /** Environments with at least one tracked instance. */
  envKeys(): IterableIterator<string> {
    return this.byEnv.keys()
  }
}
