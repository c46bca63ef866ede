import { INSTANCE_PORT } from '../runtime/instance-driver.js'
import type { HealthChecker, InstanceAddress, InstanceDriver, InstanceSpec, RuntimeInstance } from '../runtime/instance-driver.js'
import type { RuntimeRef } from '../runtime/runtime-driver.js'
import type { HealthCheck, InstanceEventType, InstanceState, InstancesResult, RuntimeLogEvent } from '../schemas/deployments.js'
import type { DeploymentRecord, InstanceRecord, ReleaseRecord, Store, VersionRecord } from '../store/store.js'
import { nowIso } from './clock.js'
import type { EnvironmentValues } from './environment-values.js'
import { MiosaError } from './errors.js'
import { newId } from './ids.js'
import { InflightRequests } from './inflight.js'
import { KeyedMutex } from './keyed-mutex.js'
import type { Log } from './log.js'
import { silentLog } from './log.js'
import { PortDiscovery, routedMessage } from './port-discovery.js'
import { ROLLOUT_OUTPUT_LINES, keptRolloutOutput, lastOutput } from './rollout-output.js'
import { secretMasker } from './secret-masker.js'

// Runtime instances of dynamic deployments: containers from a version's release image,
// health-checked, and kept at each environment's desired count by a level-triggered
// reconciler (reconcile(), run at startup and then every second). What serves is decided
// by the route: a rollout (publish, rollback, promote, restart) starts the new version's
// instances, waits until they are all healthy, flips the route, then drains the old ones
// (no new requests, in-flight ones finish up to the drain timeout) and stops them. If the
// new ones never get healthy, nothing flips and the rollout fails.
//
// Health and placement live in this process's memory (the edge reads targets() per
// request); the store keeps a row per instance and the events, for the API and for
// re-adoption after a restart, when labelled containers are found again and kept.

export interface InstanceLimits {
  cpu: number
  memoryMb: number
  pidsLimit: number
}

export const DEFAULT_INSTANCE_LIMITS: InstanceLimits = { cpu: 1, memoryMb: 512, pidsLimit: 512 }
/** How long an instance gets between SIGTERM and SIGKILL when stopped. */
const STOP_GRACE_MS = 10_000
/** Consecutive failed checks that make a healthy instance unhealthy. */
const UNHEALTHY_AFTER = 3
const BACKOFF_BASE_MS = 1000
const BACKOFF_MAX_MS = 60_000
/** Lines of output kept with an exit, to say why. */
const EXIT_LOG_LINES = 20
/** How long an instance must stay healthy before earlier crashes stop counting towards the backoff. */
const CRASH_LOOP_RESET_MS = 30_000
/** How long the edge may still be choosing a just-replaced instance before its drain counts requests. */
const DRAIN_SETTLE_MS = 50

export interface RuntimeInstancesDeps {
  store: Store
  driver?: InstanceDriver | undefined
  /** Makes the release's image present on this host (loading its OCI archive from the blob store when missing). */
  ensureImage(release: ReleaseRecord, onLog?: (line: string) => void): Promise<void>
  /** The env vars of deployment environments, injected at every boot; without it, instances get none. */
  environmentValues?: EnvironmentValues | undefined
  /** Checks one instance's health (src/runtime/health-check.ts). */
  checkHealth: HealthChecker
  inflight?: InflightRequests | undefined
  limits?: InstanceLimits | undefined
  log?: Log | undefined
}

/** What an environment should run: the active version of its route, when it is dynamic. */
interface Desired {
  deployment: DeploymentRecord
  environment: string
  version: VersionRecord
  release: ReleaseRecord
}

/** An instance this process manages. */
interface Tracked {
  record: InstanceRecord
  ref: RuntimeRef
  address: InstanceAddress
  key: string
  health: HealthCheck
  startedAt: number
  nextCheckAt: number
  failures: number
  checking: boolean
  draining: boolean
}

interface CrashLoop {
  failures: number
  nextStartAt: number
  lastExitCode: number | null
  lastLogs: string[]
  announced: boolean
}

export interface RolloutInput {
  deployment: DeploymentRecord
  environment: string
  version: VersionRecord
  /** Run the plan's Procfile `release:` command first (a publish; never a rollback or restart). */
  runReleaseCommand: boolean
  onLog?: ((line: string) => void) | undefined
  /** Re-points the route once the new instances are healthy; false: it did not (a newer version is live), so they are stopped again. */
  flip(): Promise<boolean>
}

export class RuntimeInstances {
  readonly inflight: InflightRequests
  private readonly tracked = new Map<string, Tracked>()
  /** The same, by environment: the edge asks per request. */
  private readonly byEnv = new Map<string, Set<Tracked>>()
  /** Instances being stopped: their containers still run for a moment and must not look like survivors to adopt. */
  private readonly stopping = new Set<string>()
  /** Environments with a rollout in progress: the reconciler leaves their instances alone. */
  private readonly busy = new Set<string>()
  /** When each environment's last rollout ended (a sequence number): a pass that read the desired state before then leaves it alone. */
  private readonly rolledOut = new Map<string, number>()
  private rolloutsEnded = 0
  private readonly rollouts = new KeyedMutex()
  private readonly crashes = new Map<string, CrashLoop>()
  private readonly startListeners = new Set<(t: { id: string; key: string; ref: RuntimeRef }) => void>()
  private readonly ports = new PortDiscovery(() => this.driver())
  private reconciling: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(private readonly deps: RuntimeInstancesDeps) {
    this.inflight = deps.inflight ?? new InflightRequests()
  }

  private get log(): Log {
    return this.deps.log ?? silentLog
  }

  // ── the edge ────────────────────────────────────────────────────────────────

  /**
   * Where a request to this environment goes now: its healthy instances of the version the
   * edge resolved; while a route flips, those of whatever version is healthy (the edge's
   * cache may lag a moment behind); at worst one still draining. Empty: nothing is ready.
   */
  targets(deploymentId: string, environment: string, versionId: string): InstanceAddress[] {
    const key = envKey(deploymentId, environment)
    const exact: InstanceAddress[] = []
    const other: InstanceAddress[] = []
    const draining: InstanceAddress[] = []
    const instances = this.byEnv.get(key)
    if (instances === undefined) return exact
    for (const t of instances) {
      if (t.record.state === 'starting' || t.record.state === 'unhealthy') continue
      if (t.draining) {
        if (t.record.version_id === versionId) draining.push(t.address)
      } else if (t.record.version_id === versionId) exact.push(t.address)
      else other.push(t.address)
    }
    return exact.length > 0 ? exact : other.length > 0 ? other : draining
  }

  // ── rollouts ────────────────────────────────────────────────────────────────

  /**
   * Starts the version's instances (its desired count), waits until every one is healthy,
   * flips the route, then drains what served before. Throws MiosaError (the version should
   * fail) when the release command fails or the instances are not healthy within the
   * deployment's deploy timeout; nothing flipped then, the old instances keep serving.
   */
  async rollout(input: RolloutInput): Promise<boolean> {
    this.driver()
    const { deployment, environment, version } = input
    const key = envKey(deployment.id, environment)
    const onLog = input.onLog ?? (() => {})
    return this.rollouts.run(key, async () => {
      this.busy.add(key)
      const started: Tracked[] = []
      try {
        const release = await this.releaseOf(version)
        await this.deps.ensureImage(release, onLog)
        const plan = version.plan
        if (input.runReleaseCommand && plan?.release !== undefined && plan.release !== null) await this.runReleaseCommand(deployment, environment, version, release, plan.release, onLog)
        const count = deployment.instances
        const deadline = Date.now() + deployment.deploy_timeout_seconds * 1000
        onLog(`miosa: starting ${count} instance${count === 1 ? '' : 's'} of version ${version.version_number}`)
        for (let i = 0; i < count; i++) started.push(await this.startInstance(deployment, environment, version, release))
        await this.waitHealthy(started, deadline, deployment, onLog)
        const live = await input.flip()
        if (!live) {
          onLog('miosa: a newer version went live meanwhile: these instances stop again')
          await Promise.all(started.map((t) => this.remove(t, 'a newer version went live during the rollout')))
          return false
        }
        onLog(`miosa: version ${version.version_number} is live on ${count} healthy instance${count === 1 ? '' : 's'}`)
        const fresh = new Set(started.map((t) => t.record.id))
        for (const t of this.inEnv(key)) {
          if (!t.draining && !fresh.has(t.record.id)) this.drain(t, deployment.drain_timeout_seconds, `replaced by version ${version.version_number}`)
        }
        this.crashes.delete(key)
        return true
      } catch (error) {
        // What the new instances printed outlives them: kept with the event, read by logs().
        const output = await this.maskedOutput(deployment, environment, started)
        await Promise.all(started.map((t) => this.remove(t, 'the rollout failed')))
        const reason = error instanceof MiosaError ? error.message : String(error)
        await this.event(deployment, environment, { type: 'rollout_failed', version_id: version.id, message: `version ${version.version_number} did not go live: ${reason}`, details: { output } })
        throw error
      } finally {
        this.busy.delete(key)
        this.rolledOut.set(key, ++this.rolloutsEnded)
      }
    })
  }

  /** Replaces every instance of the environment's active version with fresh ones, the zero-downtime way. */
  async restart(deployment: DeploymentRecord, environment: string, onLog?: (line: string) => void): Promise<void> {
    const route = await this.deps.store.deploymentRoutes.get({ organization_id: deployment.organization_id }, deployment.id, environment)
    const versionId = route?.active_version_id ?? null
    const version = versionId === null ? undefined : await this.deps.store.versions.get({ organization_id: deployment.organization_id }, versionId)
    if (version === undefined) throw new MiosaError('conflict', `${deployment.slug} serves nothing in ${environment}: publish first`, { details: { environment } })
    if (version.release_kind !== 'dynamic') {
      throw new MiosaError('conflict', `${deployment.slug} serves a static version in ${environment}: there are no instances to restart`, { details: { environment } })
    }
    await this.rollout({ deployment, environment, version, runReleaseCommand: false, onLog, flip: async () => true })
  }

  private async runReleaseCommand(
    deployment: DeploymentRecord,
    environment: string,
    version: VersionRecord,
    release: ReleaseRecord,
    cmd: string[],
    onLog: (line: string) => void,
  ): Promise<void> {
    const driver = this.driver()
    onLog(`miosa: release command: ${cmd.at(-1) ?? cmd.join(' ')}`)
    const { exitCode } = await driver.runOnce({
      ...(await this.specOf(deployment, environment, version, release)),
      cmd,
      timeoutMs: deployment.deploy_timeout_seconds * 1000,
      onLog: (line) => onLog(`release: ${line}`),
    })
    await this.event(deployment, environment, { type: 'release_command', version_id: version.id, message: `release command exited with ${exitCode ?? 'a timeout'}`, details: { exit_code: exitCode } })
    if (exitCode !== 0) {
      throw new MiosaError('invalid', exitCode === null ? 'the release command timed out' : `the release command exited with ${exitCode}`, { details: { exit_code: exitCode } })
    }
  }

  /** Health-checks `instances` until all pass; fails fast when one exits, and at the deadline. */
  private async waitHealthy(instances: Tracked[], deadline: number, deployment: DeploymentRecord, onLog: (line: string) => void): Promise<void> {
    const driver = this.driver()
    let lastInspect = 0
    for (;;) {
      const pending = instances.filter((t) => t.record.state !== 'healthy')
      if (pending.length === 0) return
      const results = await Promise.all(pending.map(async (t) => ({ t, result: await this.deps.checkHealth(t.address, t.health) })))
      for (const { t, result } of results) {
        if (result.ok) {
          await this.markHealthy(t)
          onLog(`miosa: instance ${t.record.id} is healthy`)
        } else await this.followListeningPort(t, onLog)
      }
      if (Date.now() - lastInspect > 500) {
        lastInspect = Date.now()
        for (const t of instances) {
          const status = await driver.inspect(t.ref)
          if (status === undefined || !status.running) {
            const lines = await this.lastLines(t.ref, ROLLOUT_OUTPUT_LINES)
            for (const line of lines) onLog(`instance: ${line}`)
            throw new MiosaError('invalid', `instance ${t.record.id} exited with ${status?.exitCode ?? 'no code'} before it became healthy${status?.oomKilled === true ? ' (out of memory)' : ''}`, {
              details: { exit_code: status?.exitCode ?? null, port: INSTANCE_PORT, last_logs: lines },
            })
          }
        }
      }
      if (Date.now() >= deadline) {
        const reason = results.find((r) => !r.result.ok)?.result.reason ?? 'not healthy'
        // The app's own words usually say why (it listens elsewhere, it waits for a database).
        const lines = (await lastOutput(driver, pending.map((t) => ({ id: t.record.id, ref: t.ref })))).map((l) => l.line)
        for (const line of lines) onLog(`instance: ${line}`)
        throw new MiosaError(
          'unavailable',
          `the new instances were not healthy within the deploy timeout of ${deployment.deploy_timeout_seconds} s (${reason}): the app was expected to listen on port ${INSTANCE_PORT} (its $PORT)`,
          { details: { deploy_timeout_seconds: deployment.deploy_timeout_seconds, port: INSTANCE_PORT, last_logs: lines } },
        )
      }
      await sleep(200)
    }
  }

  // ── the reconciler ──────────────────────────────────────────────────────────

  /** Starts the loop: a pass now, then one every `intervalMs`. */
  start(intervalMs: number): void {
    this.stopped = false
    const tick = () => {
      if (this.stopped) return
      void this.reconcile()
        .catch((error: unknown) => this.log.warn({ err: error }, 'instance reconciliation failed'))
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
    if (this.deps.driver === undefined) return Promise.resolve()
    this.reconciling ??= this.pass().finally(() => (this.reconciling = undefined))
    return this.reconciling
  }

  private async pass(): Promise<void> {
    const driver = this.driver()
    // A rollout that ends after the desired state is read may have flipped it: its
    // environment waits for the next pass, or fresh instances would be drained as unwanted.
    const readAt = this.rolloutsEnded
    const leftAlone = (key: string) => this.busy.has(key) || (this.rolledOut.get(key) ?? 0) > readAt
    const desired = await this.loadDesired()
    const containers = await driver.list()
    const byId = new Map(containers.map((c) => [c.instanceId, c]))

    // Containers this process does not track: re-adopt the ones serving what should be served, remove the rest.
    for (const c of containers) {
      if (this.tracked.has(c.instanceId) || this.stopping.has(c.instanceId)) continue
      const key = envKey(c.deploymentId, c.environment)
      if (leftAlone(key)) continue
      const want = desired.get(key)
      if (c.running && c.address !== undefined && want !== undefined && want.version.id === c.versionId) await this.adopt(c, want)
      else await this.removeOrphan(c)
    }

    // Tracked instances whose container exited or vanished: recorded, with why.
    for (const t of [...this.tracked.values()]) {
      const c = byId.get(t.record.id)
      if (c !== undefined && c.running) continue
      if (t.draining || leftAlone(t.key)) continue
      await this.exited(t, c)
    }

    await this.checkDue()

    const keys = new Set([...desired.keys(), ...this.byEnv.keys()])
    for (const key of keys) {
      if (leftAlone(key)) continue
      await this.converge(key, desired.get(key))
    }
    await this.forgetStaleRecords(containers, leftAlone)
  }

  private async converge(key: string, want: Desired | undefined): Promise<void> {
    const alive = this.inEnv(key).filter((t) => !t.draining)
    if (want === undefined) {
      for (const t of alive) this.drain(t, 30, 'the environment no longer serves a dynamic version')
      return
    }
    const { deployment, environment, version, release } = want
    const right = alive.filter((t) => t.record.version_id === version.id)
    const wrong = alive.filter((t) => t.record.version_id !== version.id)
    // Old versions go once the active one serves (after a crash mid-rollout, say), never before.
    if (wrong.length > 0 && (right.some((t) => t.record.state === 'healthy') || deployment.instances === 0)) {
      for (const t of wrong) this.drain(t, deployment.drain_timeout_seconds, `version ${version.version_number} is active`)
    }
    const count = deployment.instances
    if (right.length > count) {
      const extra = right.toSorted((a, b) => rank(a) - rank(b) || b.startedAt - a.startedAt).slice(0, right.length - count)
      for (const t of extra) this.drain(t, deployment.drain_timeout_seconds, `scaled to ${count}`)
      return
    }
    if (right.length === count) return
    const crash = this.crashes.get(key)
    if (crash !== undefined && crash.nextStartAt > Date.now()) {
      if (!crash.announced) {
        crash.announced = true
        const wait = Math.ceil((crash.nextStartAt - Date.now()) / 1000)
        await this.event(deployment, environment, {
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
      for (let i = right.length; i < count; i++) await this.startInstance(deployment, environment, version, release)
    } catch (error) {
      this.log.warn({ err: error, deployment_id: deployment.id, environment }, 'reconciler: could not start an instance')
      this.noteFailure(key, null, [error instanceof Error ? error.message : String(error)])
    }
  }

  private async checkDue(): Promise<void> {
    const now = Date.now()
    const due = [...this.tracked.values()].filter((t) => !t.checking && !t.draining && t.nextCheckAt <= now && !this.busy.has(t.key))
    await Promise.all(due.map((t) => this.check(t)))
  }

  private async check(t: Tracked): Promise<void> {
    t.checking = true
    try {
      const result = await this.deps.checkHealth(t.address, t.health)
      t.nextCheckAt = Date.now() + t.health.interval_seconds * 1000
      if (!this.tracked.has(t.record.id) || t.draining) return
      if (result.ok) {
        t.failures = 0
        if (t.record.state !== 'healthy') await this.markHealthy(t)
        // Only an instance that stays up ends a crash loop: one that passes a check and then dies keeps backing off.
        else if (t.record.healthy_at !== null && Date.now() - Date.parse(t.record.healthy_at) > CRASH_LOOP_RESET_MS) this.crashes.delete(t.key)
        return
      }
      t.failures++
      if (t.record.state === 'starting' && (await this.followListeningPort(t))) return
      const inGrace = t.record.state === 'starting' && Date.now() - t.startedAt < t.health.grace_seconds * 1000
      if (inGrace || (t.record.state === 'healthy' && t.failures < UNHEALTHY_AFTER)) return
      await this.setState(t, 'unhealthy')
      const deployment = await this.deploymentOf(t)
      await this.event(deployment, t.record.environment, {
        type: 'unhealthy',
        instance_id: t.record.id,
        version_id: t.record.version_id,
        message: `instance ${t.record.id} failed its health check (${result.reason ?? 'unknown'}): replacing it`,
        details: { reason: result.reason },
      })
      const lines = await this.lastLines(t.ref)
      this.noteFailure(t.key, null, lines)
      await this.remove(t, 'unhealthy')
    } finally {
      t.checking = false
    }
  }

  // ── instances ───────────────────────────────────────────────────────────────

  private async startInstance(deployment: DeploymentRecord, environment: string, version: VersionRecord, release: ReleaseRecord): Promise<Tracked> {
    const driver = this.driver()
    const id = newId('instance')
    const { ref, address } = await driver.start({
      ...(await this.specOf(deployment, environment, version, release)),
      instanceId: id,
      cmd: version.plan?.start ?? undefined,
    })
    const now = nowIso()
    const record: InstanceRecord = {
      id,
      organization_id: deployment.organization_id,
      workspace_id: deployment.workspace_id,
      deployment_id: deployment.id,
      environment,
      version_id: version.id,
      version_number: version.version_number,
      state: 'starting',
      runtime_ref: ref,
      address,
      exit_code: null,
      created_at: now,
      updated_at: now,
      healthy_at: null,
    }
    const t = this.track(record, ref, address, deployment.health_check)
    await this.deps.store.instances.insert(record)
    await this.event(deployment, environment, { type: 'started', instance_id: id, version_id: version.id, message: `started instance ${id} of version ${version.version_number}` })
    for (const listener of this.startListeners) listener({ id, key: t.key, ref })
    return t
  }

  private track(record: InstanceRecord, ref: RuntimeRef, address: InstanceAddress, health: HealthCheck): Tracked {
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
    // Re-adopted instances serve again as soon as one check passes; they are not restarted.
    const t = this.track({ ...record, state: 'starting', runtime_ref: c.ref, address: c.address ?? null }, c.ref, c.address as InstanceAddress, want.deployment.health_check)
    if (stored === undefined) await this.deps.store.instances.insert(t.record)
    await this.check(t)
    await this.event(want.deployment, c.environment, { type: 'adopted', instance_id: c.instanceId, version_id: c.versionId, message: `re-adopted running instance ${c.instanceId} after a restart` })
    this.log.info({ instance_id: c.instanceId, deployment_id: c.deploymentId }, 'instances: re-adopted a running instance')
  }

  private async removeOrphan(c: RuntimeInstance): Promise<void> {
    await this.driver().stop(c.ref, c.running ? STOP_GRACE_MS : 0)
    await this.deps.store.instances.delete({ organization_id: c.organizationId }, c.instanceId).catch(() => false)
    if (!c.running) return
    const deployment = (await this.deps.store.deployments.findByIds([c.deploymentId]))[0]
    if (deployment !== undefined) {
      await this.event(deployment, c.environment, { type: 'orphan_removed', instance_id: c.instanceId, version_id: c.versionId, message: `removed instance ${c.instanceId}: its version is not served` })
    }
    this.log.info({ instance_id: c.instanceId, deployment_id: c.deploymentId }, 'instances: removed an instance nothing serves')
  }

  private async exited(t: Tracked, c: RuntimeInstance | undefined): Promise<void> {
    const lines = await this.lastLines(t.ref)
    const code = c?.exitCode ?? null
    const deployment = await this.deploymentOf(t)
    await this.event(deployment, t.record.environment, {
      type: 'exited',
      instance_id: t.record.id,
      version_id: t.record.version_id,
      message: c === undefined ? `instance ${t.record.id} disappeared` : `instance ${t.record.id} exited with ${code ?? 'no code'}${c.oomKilled ? ' (out of memory)' : ''}`,
      details: { exit_code: code, last_logs: lines },
    })
    this.noteFailure(t.key, code, lines)
    await this.remove(t, 'exited')
  }

  private noteFailure(key: string, exitCode: number | null, lines: string[]): void {
    const crash = this.crashes.get(key) ?? { failures: 0, nextStartAt: 0, lastExitCode: null, lastLogs: [], announced: false }
    crash.failures++
    crash.nextStartAt = Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (crash.failures - 1))
    crash.lastExitCode = exitCode ?? crash.lastExitCode
    if (lines.length > 0) crash.lastLogs = lines
    crash.announced = false
    this.crashes.set(key, crash)
  }

  /** An app listening elsewhere than PORT gets its traffic there (port-discovery.ts); true when it was re-pointed. */
  private async followListeningPort(t: Tracked, onLog?: (line: string) => void): Promise<boolean> {
    const port = await this.ports.elsewhere(t.ref, t.address.port).catch((error: unknown) => {
      this.log.warn({ err: error, instance_id: t.record.id }, 'instances: could not read the listening sockets')
      return undefined
    })
    if (port === undefined) return false
    const message = routedMessage(port, t.address.port)
    t.address = { host: t.address.host, port }
    const now = nowIso()
    t.record = { ...t.record, address: t.address, updated_at: now }
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { address: t.address, updated_at: now })
    onLog?.(`miosa: ${message}`)
    this.log.info({ instance_id: t.record.id, port }, `instances: ${message}`)
    return true
  }

  private async markHealthy(t: Tracked): Promise<void> {
    if (t.record.state === 'healthy') return
    const now = nowIso()
    t.record = { ...t.record, state: 'healthy', healthy_at: now, updated_at: now }
    t.failures = 0
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { state: 'healthy', healthy_at: now, updated_at: now })
    const deployment = await this.deploymentOf(t)
    await this.event(deployment, t.record.environment, { type: 'healthy', instance_id: t.record.id, version_id: t.record.version_id, message: `instance ${t.record.id} is healthy and serving` })
  }

  private async setState(t: Tracked, state: InstanceState): Promise<void> {
    const now = nowIso()
    t.record = { ...t.record, state, updated_at: now }
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { state, updated_at: now })
  }

  /** No new requests from now; stopped once in-flight ones finish (or after the drain timeout). */
  private drain(t: Tracked, timeoutSeconds: number, why: string): void {
    if (t.draining) return
    t.draining = true
    void (async () => {
      await this.setState(t, 'draining')
      const deployment = await this.deploymentOf(t)
      await this.event(deployment, t.record.environment, { type: 'draining', instance_id: t.record.id, version_id: t.record.version_id, message: `draining instance ${t.record.id}: ${why}` })
      await sleep(DRAIN_SETTLE_MS)
      const idle = await this.inflight.idle(InflightRequests.key(t.address.host, t.address.port), timeoutSeconds * 1000)
      await this.remove(t, idle ? 'drained' : `drain timeout (${timeoutSeconds} s) with requests in flight`)
    })().catch((error: unknown) => this.log.warn({ err: error, instance_id: t.record.id }, 'instances: draining failed'))
  }

  /** Stops and forgets the instance, with an event. */
  private async remove(t: Tracked, why: string): Promise<void> {
    this.stopping.add(t.record.id)
    this.tracked.delete(t.record.id)
    const same = this.byEnv.get(t.key)
    same?.delete(t)
    if (same?.size === 0) this.byEnv.delete(t.key)
    await this.driver()
      .stop(t.ref, STOP_GRACE_MS)
      .catch((error: unknown) => this.log.warn({ err: error, instance_id: t.record.id }, 'instances: stopping a container failed'))
      .finally(() => this.stopping.delete(t.record.id))
    await this.deps.store.instances.delete({ organization_id: t.record.organization_id }, t.record.id)
    const deployment = await this.deploymentOf(t).catch(() => undefined)
    if (deployment !== undefined) {
      await this.event(deployment, t.record.environment, { type: 'stopped', instance_id: t.record.id, version_id: t.record.version_id, message: `stopped instance ${t.record.id} (${why})` })
    }
  }

  /** Rows a previous process left for containers that are gone. */
  private async forgetStaleRecords(containers: RuntimeInstance[], leftAlone: (key: string) => boolean): Promise<void> {
    const present = new Set(containers.map((c) => c.instanceId))
    for (const record of await this.deps.store.instances.findAllUnscoped()) {
      if (this.tracked.has(record.id) || present.has(record.id) || leftAlone(envKey(record.deployment_id, record.environment))) continue
      await this.deps.store.instances.delete({ organization_id: record.organization_id }, record.id)
    }
  }

  // ── reading ─────────────────────────────────────────────────────────────────

  /** The environment's instances, newest events first, and why they keep failing if they do. */
  async list(deployment: DeploymentRecord, environment: string, eventLimit: number): Promise<InstancesResult> {
    const scope = { organization_id: deployment.organization_id }
    const [records, events, route] = await Promise.all([
      this.deps.store.instances.find(scope, { deployment_id: deployment.id, environment }),
      this.deps.store.instanceEvents.list(scope, { limit: Math.max(eventLimit, 1), where: { deployment_id: deployment.id, environment } }),
      this.deps.store.deploymentRoutes.get(scope, deployment.id, environment),
    ])
    const crash = this.crashes.get(envKey(deployment.id, environment))
    return {
      environment,
      desired: deployment.instances,
      active_version_id: route?.active_version_id ?? null,
      data: records.map(({ runtime_ref: _ref, address: _address, ...wire }) => wire).toSorted((a, b) => a.created_at.localeCompare(b.created_at)),
      events: eventLimit === 0 ? [] : events.data,
      crash_loop:
        crash === undefined
          ? null
          : {
              failures: crash.failures,
              next_start_at: crash.nextStartAt > Date.now() ? new Date(crash.nextStartAt).toISOString() : null,
              last_exit_code: crash.lastExitCode,
              last_logs: crash.lastLogs,
            },
    }
  }

  /**
   * The output of the environment's instances: the last `tail` lines of each, then (with
   * follow) new lines as they come, from new instances too, until the signal aborts.
   */
  async *logs(deployment: DeploymentRecord, environment: string, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncGenerator<RuntimeLogEvent> {
    const driver = this.driver()
    const key = envKey(deployment.id, environment)
    // An app that prints a secret does not show it to whoever reads its logs.
    const secrets = (await this.deps.environmentValues?.resolve({ organization_id: deployment.organization_id }, deployment.id, environment, 'runtime'))?.secrets ?? []
    const mask = secretMasker(secrets)
    const queue: RuntimeLogEvent[] = []
    let wake: (() => void) | undefined
    let open = 0
    const attach = (id: string, ref: RuntimeRef, tail: number) => {
      open++
      void (async () => {
        try {
          for await (const entry of driver.logs(ref, { tail, follow: o.follow, signal: o.signal })) {
            queue.push({ instance_id: id, stream: entry.stream, timestamp: entry.timestamp, line: mask(entry.line) })
            wake?.()
          }
        } catch (error) {
          if (o.signal?.aborted !== true) this.log.warn({ err: error, instance_id: id }, 'instances: reading logs failed')
        } finally {
          open--
          wake?.()
        }
      })()
    }
    const containers = (await driver.list()).filter((c) => c.deploymentId === deployment.id && c.environment === environment)
    const listener = (t: { id: string; key: string; ref: RuntimeRef }) => {
      if (t.key === key) attach(t.id, t.ref, 0)
    }
    if (o.follow) this.startListeners.add(listener)
    const onAbort = () => wake?.()
    o.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      // Instances of a failed rollout are gone; what they printed was kept (masked already).
      queue.push(...(await keptRolloutOutput(this.deps.store, deployment, environment, o.tail)))
      for (const c of containers) attach(c.instanceId, c.ref, o.tail)
      for (;;) {
        if (queue.length > 0) {
          // Lines of several instances read at once come out in time order.
          queue.sort((a, b) => a.timestamp.localeCompare(b.timestamp))
          yield* queue.splice(0)
          continue
        }
        if (o.signal?.aborted === true) return
        if (!o.follow && open === 0) return
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    } finally {
      this.startListeners.delete(listener)
      o.signal?.removeEventListener('abort', onAbort)
    }
  }

  // ── helpers ─────────────────────────────────────────────────────────────────

  /** The environment's tracked instances, as a copy (callers start and stop some while going through them). */
  private inEnv(key: string): Tracked[] {
    return [...(this.byEnv.get(key) ?? [])]
  }

  private driver(): InstanceDriver {
    if (this.deps.driver === undefined) throw new MiosaError('unavailable', 'no runtime for dynamic apps is configured')
    return this.deps.driver
  }

  private limits(): InstanceLimits {
    return this.deps.limits ?? DEFAULT_INSTANCE_LIMITS
  }

  /** What every container of the version runs with: its image, labels, env (read now) and limits. */
  private async specOf(deployment: DeploymentRecord, environment: string, version: VersionRecord, release: ReleaseRecord): Promise<Omit<InstanceSpec, 'instanceId' | 'cmd'>> {
    return {
      organizationId: deployment.organization_id,
      workspaceId: deployment.workspace_id,
      deploymentId: deployment.id,
      environment,
      versionId: version.id,
      image: release.sha256,
      env: await this.envOf(deployment, environment, version),
      ...this.limits(),
    }
  }

  /**
   * An instance's environment, read at each boot: the deployment environment's runtime env
   * vars, then what every instance is told about itself (those names are reserved).
   */
  private async envOf(deployment: DeploymentRecord, environment: string, version: VersionRecord): Promise<Record<string, string>> {
    const values = await this.deps.environmentValues?.resolve({ organization_id: deployment.organization_id }, deployment.id, environment, 'runtime')
    return {
      NODE_ENV: 'production',
      ...values?.env,
      MIOSA_DEPLOYMENT: deployment.slug,
      MIOSA_ENVIRONMENT: environment,
      MIOSA_VERSION: String(version.version_number),
    }
  }

  private async releaseOf(version: VersionRecord): Promise<ReleaseRecord> {
    const release = version.release_sha256 === null ? undefined : await this.deps.store.releases.get(version.release_sha256)
    if (release === undefined || release.kind !== 'dynamic') {
      throw new MiosaError('conflict', `version ${version.version_number} (${version.id}) has no dynamic release to run`, { details: { version_id: version.id } })
    }
    return release
  }

  private async deploymentOf(t: Tracked): Promise<DeploymentRecord> {
    const deployment = await this.deps.store.deployments.get({ organization_id: t.record.organization_id }, t.record.deployment_id)
    if (deployment === undefined) throw new MiosaError('not_found', `deployment ${t.record.deployment_id} not found`)
    return deployment
  }

  private async lastLines(ref: RuntimeRef, count = EXIT_LOG_LINES): Promise<string[]> {
    const lines: string[] = []
    try {
      for await (const entry of this.driver().logs(ref, { tail: count, follow: false })) lines.push(entry.line)
    } catch {
      // The container may be gone already: no lines then.
    }
    return lines.slice(-count)
  }

  /** The last lines of these instances' output, with the environment's secrets masked. */
  private async maskedOutput(deployment: DeploymentRecord, environment: string, instances: readonly Tracked[]): Promise<RuntimeLogEvent[]> {
    if (instances.length === 0) return []
    try {
      const secrets = (await this.deps.environmentValues?.resolve({ organization_id: deployment.organization_id }, deployment.id, environment, 'runtime'))?.secrets ?? []
      const mask = secretMasker(secrets)
      return (await lastOutput(this.driver(), instances.map((t) => ({ id: t.record.id, ref: t.ref })))).map((l) => ({ ...l, line: mask(l.line) }))
    } catch (error) {
      this.log.warn({ err: error, deployment_id: deployment.id }, 'instances: keeping the output of a failed rollout failed')
      return []
    }
  }

  private async event(
    deployment: DeploymentRecord,
    environment: string,
    e: { type: InstanceEventType; message: string; instance_id?: string | undefined; version_id?: string | undefined; details?: Record<string, unknown> | undefined },
  ): Promise<void> {
    this.log.info({ deployment_id: deployment.id, environment, instance_id: e.instance_id, event: e.type }, `instances: ${e.message}`)
    await this.deps.store.instanceEvents
      .insert({
        id: newId('instanceEvent'),
        organization_id: deployment.organization_id,
        deployment_id: deployment.id,
        environment,
        instance_id: e.instance_id ?? null,
        version_id: e.version_id ?? null,
        type: e.type,
        message: e.message,
        details: e.details ?? {},
        created_at: nowIso(),
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'instances: recording an event failed'))
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

function envKey(deploymentId: string, environment: string): string {
  return `${deploymentId}\u0000${environment}`
}

/** Which of an environment's instances go first when it has too many: not serving before serving. */
function rank(t: Tracked): number {
  return t.record.state === 'healthy' ? 1 : 0
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
