import type { InstancesResult, RuntimeLogEvent } from '../schemas/deployments.js'
import type { DeploymentRecord } from '../store/store.js'
import { InflightRequests } from './inflight.js'
import { CrashLoops } from './instances/crash-loops.js'
import { inflightDrainGate } from './instances/drain-gate.js'
import { HealthMonitor } from './instances/health.js'
import type { RuntimeInstancesDeps } from './instances/instance-deps.js'
import { InstanceLifecycle } from './instances/instance-lifecycle.js'
import { InstanceRegistry } from './instances/instance-registry.js'
import { InstanceLogs } from './instances/logs.js'
import { InstanceReconciler } from './instances/reconciler.js'
import { Rollouts } from './instances/rollout.js'
import type { RolloutInput } from './instances/rollout.js'

// Runtime instances of dynamic deployments: containers from a version's release image,
// health-checked, and kept at each environment's desired count. The parts, in
// src/core/instances/:
//   rollout.ts        start the new, health-gate, switch (the flip it is given), drain the old
//   reconciler.ts     desired vs actual, level-triggered: adoption, orphans, exits, crash-loop backoff
//   health.ts         periodic checks: healthy, unhealthy
//   logs.ts           the list, events and (masked) output the API shows
//   instance-lifecycle.ts  start, mark, drain, stop one instance; announces `instances.changed`
//   instance-targets.ts    where the edge sends traffic, read from the store's rows
// The store keeps a row per instance (its state and address: what edges route to) and the
// events; this process's memory keeps only what a worker needs to manage its instances.

export { DEFAULT_INSTANCE_LIMITS } from './instances/instance-deps.js'
export type { InstanceLimits, RuntimeInstancesDeps } from './instances/instance-deps.js'
export type { RolloutInput } from './instances/rollout.js'

export class RuntimeInstances {
  readonly inflight: InflightRequests
  private readonly rollouts: Rollouts
  private readonly reconciler: InstanceReconciler
  private readonly logsOf: InstanceLogs

  constructor(deps: RuntimeInstancesDeps) {
    this.inflight = deps.inflight ?? new InflightRequests()
    const registry = new InstanceRegistry()
    const crashes = new CrashLoops()
    const lifecycle = new InstanceLifecycle(deps, registry, deps.drainGate ?? inflightDrainGate(this.inflight))
    const health = new HealthMonitor(deps.checkHealth, registry, lifecycle, crashes)
    this.logsOf = new InstanceLogs(deps, lifecycle, crashes)
    this.rollouts = new Rollouts(deps, registry, lifecycle, crashes, this.logsOf)
    this.reconciler = new InstanceReconciler(deps, registry, lifecycle, health, crashes, this.rollouts, () => deps.driver !== undefined)
  }

  /**
   * Starts the version's instances (its desired count), waits until every one is healthy,
   * flips the route, then drains what served before (rollout.ts).
   */
  rollout(input: RolloutInput): Promise<boolean> {
    return this.rollouts.rollout(input)
  }

  /** Replaces every instance of the environment's active version with fresh ones, the zero-downtime way. */
  restart(deployment: DeploymentRecord, environment: string, onLog?: (line: string) => void): Promise<void> {
    return this.rollouts.restart(deployment, environment, onLog)
  }

  /** Starts the reconciler's loop: a pass now, then one every `intervalMs`. */
  start(intervalMs: number): void {
    this.reconciler.start(intervalMs)
  }

  /** Stops the loop. Instances keep running: the next process re-adopts them. */
  stop(): Promise<void> {
    return this.reconciler.stop()
  }

  /** One reconciler pass; concurrent callers share the one in flight. */
  reconcile(): Promise<void> {
    return this.reconciler.reconcile()
  }

  /** The environment's instances, newest events first, and why they keep failing if they do. */
  list(deployment: DeploymentRecord, environment: string, eventLimit: number): Promise<InstancesResult> {
    return this.logsOf.list(deployment, environment, eventLimit)
  }

  /** The output of the environment's instances (logs.ts). */
  logs(deployment: DeploymentRecord, environment: string, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncGenerator<RuntimeLogEvent> {
    return this.logsOf.logs(deployment, environment, o)
  }
}
