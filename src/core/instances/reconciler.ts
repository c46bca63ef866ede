import type { InstanceAddress, RuntimeInstance } from '../../runtime/instance-driver.js'
import type { DeploymentRecord, InstanceRecord, ReleaseRecord, Store, VersionRecord } from '../../store/store.js'
import { nowIso } from '../clock.js'
import type { CrashLoops } from './crash-loops.js'
import type { HealthMonitor } from './health.js'
import { STOP_GRACE_MS } from './instance-lifecycle.js'
import type { InstanceLifecycle } from './instance-lifecycle.js'
import { envKey } from './instance-registry.js'
import type { InstanceRegistry, Tracked } from './instance-registry.js'
import type { Rollouts } from './rollout.js'

// The level-triggered reconciler: each pass compares what should run (every environment
// whose route serves a dynamic version, at its deployment's instance count) with what runs
// (the containers the driver lists) and converges: containers nobody tracks are re-adopted
// when they serve the active version (a restarted process) or removed (orphans); exits are
// recorded with why; missing instances are started, held back by the crash-loop backoff;
// extra or outdated ones drain. An environment with a rollout in progress is left alone.

/** What an environment should run: the active version of its route, when it is dynamic. */
interface Desired {
  deployment: DeploymentRecord
  environment: string
  version: VersionRecord
  release: ReleaseRecord
}

export class InstanceReconciler {
  private reconciling: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(
    private readonly deps: { store: Store; ensureImage(release: ReleaseRecord, onLog?: (line: string) => void): Promise<void> },
    private readonly registry: InstanceRegistry,
    private readonly lifecycle: InstanceLifecycle,
    private readonly health: HealthMonitor,
    private readonly crashes: CrashLoops,
    private readonly rollouts: Rollouts,
    private readonly enabled: () => boolean,
  ) {}

  /** Starts the loop: a pass now, then one every `intervalMs`. */
  start(intervalMs: number): void {
    this.stopped = false
    const tick = () => {
      if (this.stopped) return
      void this.reconcile()
        .catch((error: unknown) => this.lifecycle.log.warn({ err: error }, 'instance reconciliation failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, intervalMs).unref()
        })
    }
    tick()
  }

  /** Stops the loop. Instances keep running: the next process re-adopts them. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.reconciling
  }

  /** One pass; concurrent callers share the one in flight. */
  reconcile(): Promise<void> {
    if (!this.enabled()) return Promise.resolve()
    this.reconciling ??= this.pass().finally(() => (this.reconciling = undefined))
    return this.reconciling
  }

  private async pass(): Promise<void> {
    const driver = this.lifecycle.driver()
    // A rollout that ends after the desired state is read may have flipped it: its
    // environment waits for the next pass, or fresh instances would be drained as unwanted.
    const readAt = this.rollouts.endedSoFar()
    const leftAlone = (key: string) => this.rollouts.leavesAlone(key, readAt)
    const desired = await this.loadDesired()
    const containers = await driver.list()
    const byId = new Map(containers.map((c) => [c.instanceId, c]))

    // Containers this process does not track: re-adopt the ones serving what should be served, remove the rest.
    for (const c of containers) {
      if (this.registry.has(c.instanceId) || this.registry.stopping.has(c.instanceId)) continue
      const key = envKey(c.deploymentId, c.environment)
      if (leftAlone(key)) continue
      const want = desired.get(key)
      if (c.running && c.address !== undefined && want !== undefined && want.version.id === c.versionId) await this.adopt(c, want)
      else await this.removeOrphan(c)
    }

    // Tracked instances whose container exited or vanished: recorded, with why.
    for (const t of this.registry.all()) {
      const c = byId.get(t.record.id)
      if (c !== undefined && c.running) continue
      if (t.draining || leftAlone(t.key)) continue
      await this.exited(t, c)
    }

    await this.health.checkDue((key) => this.rollouts.isBusy(key))

    const keys = new Set([...desired.keys(), ...this.registry.envKeys()])
    for (const key of keys) {
      if (leftAlone(key)) continue
      await this.converge(key, desired.get(key))
    }
    await this.forgetStaleRecords(containers, leftAlone)
  }

  private async converge(key: string, want: Desired | undefined): Promise<void> {
    const alive = this.registry.inEnv(key).filter((t) => !t.draining)
    if (want === undefined) {
      for (const t of alive) this.lifecycle.drain(t, 30, 'the environment no longer serves a dynamic version')
      return
    }
    const { deployment, environment, version, release } = want
    const right = alive.filter((t) => t.record.version_id === version.id)
    const wrong = alive.filter((t) => t.record.version_id !== version.id)
    // Old versions go once the active one serves (after a crash mid-rollout, say), never before.
    if (wrong.length > 0 && (right.some((t) => t.record.state === 'healthy') || deployment.instances === 0)) {
      for (const t of wrong) this.lifecycle.drain(t, deployment.drain_timeout_seconds, `version ${version.version_number} is active`)
    }
    const count = deployment.instances
    if (right.length > count) {
      const extra = right.toSorted((a, b) => rank(a) - rank(b) || b.startedAt - a.startedAt).slice(0, right.length - count)
      for (const t of extra) this.lifecycle.drain(t, deployment.drain_timeout_seconds, `scaled to ${count}`)
      return
    }
    if (right.length === count) return
    const crash = this.crashes.get(key)
    if (crash !== undefined && crash.nextStartAt > Date.now()) {
      if (!crash.announced) {
        crash.announced = true
        const wait = Math.ceil((crash.nextStartAt - Date.now()) / 1000)
        await this.lifecycle.event(deployment, environment, {
          type: 'backoff',
          version_id: version.id,
          message: `instances keep failing (${crash.failures} in a row, last exit ${crash.lastExitCode ?? 'none'}): next start in ${wait} s`,
          details: { failures: crash.failures, exit_code: crash.lastExitCode, last_logs: crash.lastLogs },
        })
      }
      return
    }
    try {
      await this.deps.ensureImage(release)
      for (let i = right.length; i < count; i++) await this.lifecycle.start(deployment, environment, version, release)
    } catch (error) {
      this.lifecycle.log.warn({ err: error, deployment_id: deployment.id, environment }, 'reconciler: could not start an instance')
      this.crashes.note(key, null, [error instanceof Error ? error.message : String(error)])
    }
  }

  private async adopt(c: RuntimeInstance, want: Desired): Promise<void> {
    const scope = { organization_id: c.organizationId }
    const stored = await this.deps.store.instances.get(scope, c.instanceId)
    const now = nowIso()
    const record: InstanceRecord = stored ?? {
      id: c.instanceId,
      organization_id: c.organizationId,
      workspace_id: c.workspaceId,
      deployment_id: c.deploymentId,
      environment: c.environment,
      version_id: c.versionId,
      version_number: want.version.version_number,
      state: 'starting',
      runtime_ref: c.ref,
      address: c.address ?? null,
      exit_code: null,
      created_at: now,
      updated_at: now,
      healthy_at: null,
    }
    // Re-adopted instances are checked at once, not restarted. Their stored state stays as
    // it was meanwhile: edges (in other processes too) keep serving a healthy one while
    // its worker restarts; the check below confirms it or marks it unhealthy.
    const t = this.registry.add({ ...record, state: 'starting', runtime_ref: c.ref, address: c.address ?? null }, c.ref, c.address as InstanceAddress, want.deployment.health_check)
    if (stored === undefined) await this.deps.store.instances.insert(t.record)
    else await this.deps.store.instances.update(scope, c.instanceId, { runtime_ref: c.ref, address: c.address ?? null, updated_at: now })
    await this.lifecycle.changed(t.record)
    await this.health.check(t)
    await this.lifecycle.event(want.deployment, c.environment, { type: 'adopted', instance_id: c.instanceId, version_id: c.versionId, message: `re-adopted running instance ${c.instanceId} after a restart` })
    this.lifecycle.log.info({ instance_id: c.instanceId, deployment_id: c.deploymentId }, 'instances: re-adopted a running instance')
  }

  private async removeOrphan(c: RuntimeInstance): Promise<void> {
    await this.lifecycle.driver().stop(c.ref, c.running ? STOP_GRACE_MS : 0)
    const removed = await this.deps.store.instances.delete({ organization_id: c.organizationId }, c.instanceId).catch(() => false)
    if (removed) await this.lifecycle.changed({ deployment_id: c.deploymentId, environment: c.environment })
    if (!c.running) return
    const deployment = (await this.deps.store.deployments.findByIds([c.deploymentId]))[0]
    if (deployment !== undefined) {
      await this.lifecycle.event(deployment, c.environment, { type: 'orphan_removed', instance_id: c.instanceId, version_id: c.versionId, message: `removed instance ${c.instanceId}: its version is not served` })
    }
    this.lifecycle.log.info({ instance_id: c.instanceId, deployment_id: c.deploymentId }, 'instances: removed an instance nothing serves')
  }

  private async exited(t: Tracked, c: RuntimeInstance | undefined): Promise<void> {
    const lines = await this.lifecycle.lastLines(t.ref)
    const code = c?.exitCode ?? null
    const deployment = await this.lifecycle.deploymentOf(t)
    await this.lifecycle.event(deployment, t.record.environment, {
      type: 'exited',
      instance_id: t.record.id,
      version_id: t.record.version_id,
      message: c === undefined ? `instance ${t.record.id} disappeared` : `instance ${t.record.id} exited with ${code ?? 'no code'}${c.oomKilled ? ' (out of memory)' : ''}`,
      details: { exit_code: code, last_logs: lines },
    })
    this.crashes.note(t.key, code, lines)
    await this.lifecycle.remove(t, 'exited')
  }

  /** Rows a previous process left for containers that are gone. */
  private async forgetStaleRecords(containers: RuntimeInstance[], leftAlone: (key: string) => boolean): Promise<void> {
    const present = new Set(containers.map((c) => c.instanceId))
    for (const record of await this.deps.store.instances.findAllUnscoped()) {
      if (this.registry.has(record.id) || present.has(record.id) || leftAlone(envKey(record.deployment_id, record.environment))) continue
      await this.deps.store.instances.delete({ organization_id: record.organization_id }, record.id)
      await this.lifecycle.changed(record)
    }
  }

  /** Every environment that serves a ready dynamic version, with what it needs to run it. */
  private async loadDesired(): Promise<Map<string, Desired>> {
    const routes = await this.deps.store.deploymentRoutes.findAllActive()
    const desired = new Map<string, Desired>()
    if (routes.length === 0) return desired
    const deployments = new Map((await this.deps.store.deployments.findByIds([...new Set(routes.map((r) => r.deployment_id))])).map((d) => [d.id, d]))
    for (const route of routes) {
      const deployment = deployments.get(route.deployment_id)
      if (deployment === undefined || route.active_version_id === null) continue
      const version = await this.deps.store.versions.findById(route.active_version_id)
      if (version === undefined || version.release_kind !== 'dynamic' || version.release_sha256 === null) continue
      const release = await this.deps.store.releases.get(version.release_sha256)
      if (release === undefined) continue
      desired.set(envKey(deployment.id, route.environment), { deployment, environment: route.environment, version, release })
    }
    return desired
  }
}

/** Which of an environment's instances go first when it has too many: not serving before serving. */
function rank(t: Tracked): number {
  return t.record.state === 'healthy' ? 1 : 0
}
