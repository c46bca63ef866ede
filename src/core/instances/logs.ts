import type { RuntimeRef } from '../../runtime/runtime-driver.js'
import type { InstancesResult, RuntimeLogEvent } from '../../schemas/deployments.js'
import type { DeploymentRecord, Store } from '../../store/store.js'
import type { EnvironmentValues } from '../environment-values.js'
import { keptRolloutOutput, lastOutput } from '../rollout-output.js'
import { secretMasker } from '../secret-masker.js'
import type { CrashLoops } from './crash-loops.js'
import type { InstanceLifecycle } from './instance-lifecycle.js'
import { envKey } from './instance-registry.js'
import type { Tracked } from './instance-registry.js'

// What the API shows of an environment's instances: the list (with its events and why it
// keeps failing, if it does) and their output. An app that prints a secret does not show
// it to whoever reads its logs: every line passes the environment's secret masker.

export class InstanceLogs {
  constructor(
    private readonly deps: { store: Store; environmentValues?: EnvironmentValues | undefined },
    private readonly lifecycle: InstanceLifecycle,
    private readonly crashes: CrashLoops,
  ) {}

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
    const driver = this.lifecycle.driver()
    const key = envKey(deployment.id, environment)
    const mask = await this.maskerOf(deployment, environment)
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
          if (o.signal?.aborted !== true) this.lifecycle.log.warn({ err: error, instance_id: id }, 'instances: reading logs failed')
        } finally {
          open--
          wake?.()
        }
      })()
    }
    const containers = (await driver.list()).filter((c) => c.deploymentId === deployment.id && c.environment === environment)
    const stopFollowing = o.follow
      ? this.lifecycle.onStart((t) => {
          if (t.key === key) attach(t.id, t.ref, 0)
        })
      : () => {}
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
      stopFollowing()
      o.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** The last lines of these instances' output, with the environment's secrets masked (kept when a rollout fails). */
  async maskedOutput(deployment: DeploymentRecord, environment: string, instances: readonly Tracked[]): Promise<RuntimeLogEvent[]> {
    if (instances.length === 0) return []
    try {
      const mask = await this.maskerOf(deployment, environment)
      return (await lastOutput(this.lifecycle.driver(), instances.map((t) => ({ id: t.record.id, ref: t.ref })))).map((l) => ({ ...l, line: mask(l.line) }))
    } catch (error) {
      this.lifecycle.log.warn({ err: error, deployment_id: deployment.id }, 'instances: keeping the output of a failed rollout failed')
      return []
    }
  }

  private async maskerOf(deployment: DeploymentRecord, environment: string): Promise<(line: string) => string> {
    const secrets = (await this.deps.environmentValues?.resolve({ organization_id: deployment.organization_id }, deployment.id, environment, 'runtime'))?.secrets ?? []
    return secretMasker(secrets)
  }
}
