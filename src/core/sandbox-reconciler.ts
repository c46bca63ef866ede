import type { RuntimeDriver, RuntimeSandbox } from '../runtime/runtime-driver.js'
import type { SandboxRecord, Store } from '../store/store.js'
import type { Log } from './log.js'
import { LIVE_STATES, scopeOf } from './sandboxes.js'
import type { SandboxService } from './sandboxes.js'

/**
 * Makes the store and the runtime agree, at startup and then periodically: containers
 * of live sandboxes are re-adopted (a stopped container is a paused sandbox, a running
 * one a running sandbox), containers nobody owns are removed, sandboxes whose
 * container vanished go to `error` with the reason, and egress rules are put back. Level-triggered: any pass can be
 * re-run at any time.
 */
export class SandboxReconciler {
  constructor(private readonly deps: { store: Store; runtime: RuntimeDriver; sandboxes: SandboxService; log: Log }) {}

  async reconcile(): Promise<{ adopted: number; removed: number; lost: number }> {
    const listedAt = new Date().toISOString()
    const containers = await this.deps.runtime.listSandboxes()
    const owners = new Map((await this.deps.store.sandboxes.findByIds(containers.map((c) => c.sandboxId))).map((r) => [r.id, r]))
    const seen = new Set<string>()
    let adopted = 0
    let removed = 0
    for (const container of containers) {
      const owner = owners.get(container.sandboxId)
      if (owner !== undefined && this.deps.sandboxes.isProvisioning(owner.id)) {
        seen.add(owner.id)
        continue
      }
      const orphan = owner === undefined || owner.state === 'destroyed' || (owner.runtime_ref !== null && owner.runtime_ref.id !== container.ref.id)
      if (orphan) {
        await this.deps.runtime.destroy(container.ref)
        removed++
        this.deps.log.info({ sandbox_id: container.sandboxId, container: container.ref.id }, 'reconciler: removed a container no live sandbox owns')
        continue
      }
      seen.add(owner.id)
      if (await this.adopt(owner, container, listedAt)) adopted++
    }
    let lost = 0
    const live = await this.deps.store.sandboxes.findInStates(LIVE_STATES)
    for (const record of live) {
      if (seen.has(record.id) || this.deps.sandboxes.isProvisioning(record.id)) continue
      await this.deps.sandboxes.withLock(record.id, async () => {
        const fresh = await this.deps.store.sandboxes.get(scopeOf(record), record.id)
        if (fresh === undefined || !LIVE_STATES.includes(fresh.state) || this.deps.sandboxes.isProvisioning(fresh.id)) return
        const reason = fresh.state === 'creating' ? 'creation was interrupted by a platform restart' : 'its container disappeared'
        await this.deps.sandboxes.update(fresh, { state: 'error', error: reason })
        lost++
        this.deps.log.warn({ sandbox_id: fresh.id, reason }, 'reconciler: sandbox lost')
      })
    }
    // Host rules do not survive a reboot and a restarted container may have a new address: put them back.
    const restricted = live.flatMap((r) =>
      r.egress !== null && r.runtime_ref !== null && (r.state === 'running' || r.state === 'snapshotting') ? [{ ref: r.runtime_ref, egress: r.egress }] : [],
    )
    await this.deps.runtime.syncEgress?.(restricted)
    await this.deps.runtime.releaseUnused?.(new Set(live.map((r) => r.workspace_id)))
    return { adopted, removed, lost }
  }

  /** Brings one sandbox's record in line with its container; true when anything changed. */
  private adopt(owner: SandboxRecord, container: RuntimeSandbox, listedAt: string): Promise<boolean> {
    return this.deps.sandboxes.withLock(owner.id, async () => {
      const record = await this.deps.store.sandboxes.get(scopeOf(owner), owner.id)
      if (record === undefined) return false
      // Changed since the containers were listed (a stop, a resume, a snapshot that held
      // the lock meanwhile): what we saw of its container is stale. The next pass looks again.
      if (record.updated_at > listedAt) return false
      const state = container.running ? 'running' : 'paused'
      const sameRef = record.runtime_ref?.id === container.ref.id
      // snapshotting left over from a crash, creating whose answer never got recorded, or a container started or stopped behind our back.
      if (sameRef && record.state === state) return false
      await this.deps.sandboxes.update(record, {
        state,
        runtime_ref: { driver: container.ref.driver, id: container.ref.id },
        ...(state === 'running' ? { last_activity_at: new Date().toISOString() } : {}),
      })
      this.deps.log.info({ sandbox_id: record.id, from: record.state, to: state }, 'reconciler: adopted sandbox')
      return true
    })
  }
}
