import type { HealthChecker } from '../../runtime/instance-driver.js'
import { CRASH_LOOP_RESET_MS } from './crash-loops.js'
import type { CrashLoops } from './crash-loops.js'
import type { InstanceLifecycle } from './instance-lifecycle.js'
import type { InstanceRegistry, Tracked } from './instance-registry.js'

// Periodic health checks of every instance this process manages (each at its deployment's
// interval): a starting instance that passes becomes healthy and serves; one still failing
// after its grace period, or a healthy one failing three checks in a row, is marked
// unhealthy (no more traffic), counted towards the crash-loop backoff and replaced.

/** Consecutive failed checks that make a healthy instance unhealthy. */
const UNHEALTHY_AFTER = 3

export class HealthMonitor {
  constructor(
    private readonly checkHealth: HealthChecker,
    private readonly registry: InstanceRegistry,
    private readonly lifecycle: InstanceLifecycle,
    private readonly crashes: CrashLoops,
  ) {}

  /** Checks every instance whose check is due, except in environments `skip` names (a rollout checks its own). */
  async checkDue(skip: (key: string) => boolean): Promise<void> {
    const now = Date.now()
    const due = this.registry.all().filter((t) => !t.checking && !t.draining && t.nextCheckAt <= now && !skip(t.key))
    await Promise.all(due.map((t) => this.check(t)))
  }

  async check(t: Tracked): Promise<void> {
    t.checking = true
    try {
      const result = await this.checkHealth(t.address, t.health)
      t.nextCheckAt = Date.now() + t.health.interval_seconds * 1000
      if (!this.registry.has(t.record.id) || t.draining) return
      if (result.ok) {
        t.failures = 0
        if (t.record.state !== 'healthy') await this.lifecycle.markHealthy(t)
        // Only an instance that stays up ends a crash loop: one that passes a check and then dies keeps backing off.
        else if (t.record.healthy_at !== null && Date.now() - Date.parse(t.record.healthy_at) > CRASH_LOOP_RESET_MS) this.crashes.reset(t.key)
        return
      }
      t.failures++
      if (t.record.state === 'starting' && (await this.lifecycle.followListeningPort(t))) return
      const inGrace = t.record.state === 'starting' && Date.now() - t.startedAt < t.health.grace_seconds * 1000
      if (inGrace || (t.record.state === 'healthy' && t.failures < UNHEALTHY_AFTER)) return
      await this.lifecycle.setState(t, 'unhealthy')
      const deployment = await this.lifecycle.deploymentOf(t)
      await this.lifecycle.event(deployment, t.record.environment, {
        type: 'unhealthy',
        instance_id: t.record.id,
        version_id: t.record.version_id,
        message: `instance ${t.record.id} failed its health check (${result.reason ?? 'unknown'}): replacing it`,
        details: { reason: result.reason },
      })
      const lines = await this.lifecycle.lastLines(t.ref)
      this.crashes.note(t.key, null, lines)
      await this.lifecycle.remove(t, 'unhealthy')
    } finally {
      t.checking = false
    }
  }
}
