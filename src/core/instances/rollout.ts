import { INSTANCE_PORT } from '../../runtime/instance-driver.js'
import type { HealthChecker } from '../../runtime/instance-driver.js'
import type { DeploymentRecord, ReleaseRecord, Store, VersionRecord } from '../../store/store.js'
import { MiosaError } from '../errors.js'
import { KeyedMutex } from '../keyed-mutex.js'
import { ROLLOUT_OUTPUT_LINES, lastOutput } from '../rollout-output.js'
import type { CrashLoops } from './crash-loops.js'
import type { InstanceLifecycle } from './instance-lifecycle.js'
import { sleep } from './instance-lifecycle.js'
import { envKey } from './instance-registry.js'
import type { InstanceRegistry, Tracked } from './instance-registry.js'
import type { InstanceLogs } from './logs.js'

// A rollout (publish, rollback, promote, restart): start the new version's instances,
// wait until every one is healthy, switch traffic through the `flip` it is given (the
// route switch), then drain what served before. If the new ones never get healthy,
// nothing flips, they are removed, and the old ones keep serving. One rollout per
// environment at a time; the reconciler leaves an environment alone while it rolls out.

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

export class Rollouts {
  /** Environments with a rollout in progress. */
  private readonly busy = new Set<string>()
  /** When each environment's last rollout ended (a sequence number). */
  private readonly rolledOut = new Map<string, number>()
  private ended = 0
  private readonly mutex = new KeyedMutex()

  constructor(
    private readonly deps: { store: Store; checkHealth: HealthChecker; ensureImage(release: ReleaseRecord, onLog?: (line: string) => void): Promise<void> },
    private readonly registry: InstanceRegistry,
    private readonly lifecycle: InstanceLifecycle,
    private readonly crashes: CrashLoops,
    private readonly logs: InstanceLogs,
  ) {}

  /** How many rollouts have ended so far: a reconciler pass notes it before it reads the desired state. */
  endedSoFar(): number {
    return this.ended
  }

  /**
   * Whether the reconciler must leave the environment alone: a rollout runs there, or one
   * ended after the pass read the desired state (it may have flipped it: the fresh
   * instances would look unwanted).
   */
  leavesAlone(key: string, readAt: number): boolean {
    return this.busy.has(key) || (this.rolledOut.get(key) ?? 0) > readAt
  }

  isBusy(key: string): boolean {
    return this.busy.has(key)
  }

  /**
   * Starts the version's instances (its desired count), waits until every one is healthy,
   * flips the route, then drains what served before. Throws MiosaError (the version should
   * fail) when the release command fails or the instances are not healthy within the
   * deployment's deploy timeout; nothing flipped then, the old instances keep serving.
   */
  async rollout(input: RolloutInput): Promise<boolean> {
    this.lifecycle.driver()
    const { deployment, environment, version } = input
    const key = envKey(deployment.id, environment)
    const onLog = input.onLog ?? (() => {})
    return this.mutex.run(key, async () => {
      this.busy.add(key)
      const started: Tracked[] = []
      try {
        const release = await this.lifecycle.releaseOf(version)
        await this.deps.ensureImage(release, onLog)
        const plan = version.plan
        if (input.runReleaseCommand && plan?.release !== undefined && plan.release !== null) await this.runReleaseCommand(deployment, environment, version, release, plan.release, onLog)
        const count = deployment.instances
        const deadline = Date.now() + deployment.deploy_timeout_seconds * 1000
        onLog(`miosa: starting ${count} instance${count === 1 ? '' : 's'} of version ${version.version_number}`)
        for (let i = 0; i < count; i++) started.push(await this.lifecycle.start(deployment, environment, version, release))
        await this.waitHealthy(started, deadline, deployment, onLog)
        const live = await input.flip()
        if (!live) {
          onLog('miosa: a newer version went live meanwhile: these instances stop again')
          await Promise.all(started.map((t) => this.lifecycle.remove(t, 'a newer version went live during the rollout')))
          return false
        }
        onLog(`miosa: version ${version.version_number} is live on ${count} healthy instance${count === 1 ? '' : 's'}`)
        const fresh = new Set(started.map((t) => t.record.id))
        for (const t of this.registry.inEnv(key)) {
          if (!t.draining && !fresh.has(t.record.id)) this.lifecycle.drain(t, deployment.drain_timeout_seconds, `replaced by version ${version.version_number}`)
        }
        this.crashes.reset(key)
        return true
      } catch (error) {
        // What the new instances printed outlives them: kept with the event, read by logs().
        const output = await this.logs.maskedOutput(deployment, environment, started)
        await Promise.all(started.map((t) => this.lifecycle.remove(t, 'the rollout failed')))
        const reason = error instanceof MiosaError ? error.message : String(error)
        await this.lifecycle.event(deployment, environment, { type: 'rollout_failed', version_id: version.id, message: `version ${version.version_number} did not go live: ${reason}`, details: { output } })
        throw error
      } finally {
        this.busy.delete(key)
        this.rolledOut.set(key, ++this.ended)
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
    const driver = this.lifecycle.driver()
    onLog(`miosa: release command: ${cmd.at(-1) ?? cmd.join(' ')}`)
    const { exitCode } = await driver.runOnce({
      ...(await this.lifecycle.specOf(deployment, environment, version, release)),
      cmd,
      timeoutMs: deployment.deploy_timeout_seconds * 1000,
      onLog: (line) => onLog(`release: ${line}`),
    })
    await this.lifecycle.event(deployment, environment, { type: 'release_command', version_id: version.id, message: `release command exited with ${exitCode ?? 'a timeout'}`, details: { exit_code: exitCode } })
    if (exitCode !== 0) {
      throw new MiosaError('invalid', exitCode === null ? 'the release command timed out' : `the release command exited with ${exitCode}`, { details: { exit_code: exitCode } })
    }
  }

  /** Health-checks `instances` until all pass; fails fast when one exits, and at the deadline. */
  private async waitHealthy(instances: Tracked[], deadline: number, deployment: DeploymentRecord, onLog: (line: string) => void): Promise<void> {
    const driver = this.lifecycle.driver()
    let lastInspect = 0
    for (;;) {
      const pending = instances.filter((t) => t.record.state !== 'healthy')
      if (pending.length === 0) return
      const results = await Promise.all(pending.map(async (t) => ({ t, result: await this.deps.checkHealth(t.address, t.health) })))
      for (const { t, result } of results) {
        if (result.ok) {
          await this.lifecycle.markHealthy(t)
          onLog(`miosa: instance ${t.record.id} is healthy`)
        } else await this.lifecycle.followListeningPort(t, onLog)
      }
      if (Date.now() - lastInspect > 500) {
        lastInspect = Date.now()
        for (const t of instances) {
          const status = await driver.inspect(t.ref)
          if (status === undefined || !status.running) {
            const lines = await this.lifecycle.lastLines(t.ref, ROLLOUT_OUTPUT_LINES)
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
}
