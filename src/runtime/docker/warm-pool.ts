import type { Logger } from 'pino'
import { newId } from '../../core/ids.js'
import type { RuntimeRef, WarmKey } from '../runtime-driver.js'

// Started containers kept ready per (organization, workspace, template), so creating a
// sandbox is a claim rather than a container start (~200 ms here) plus an agent boot.
// Each pooled container already carries the labels of the sandbox it will become: its
// id is chosen when the container is created and handed to the sandbox record on
// reserve, so labels never need changing (Docker cannot change them). A pool exists
// only for keys that were asked for recently, and is emptied when they go quiet. A claim
// refills the pool right after, ahead of the next create; while sandboxes start cold (a
// burst larger than the pool) refills wait for them, so they never compete for the daemon.
// A key that had a burst keeps as many ready as that burst asked for (up to maxSize), so
// the next burst is a claim too; after idleMs without one it falls back to size.

/** A pool that fails to fill waits this long before trying again. */
const FILL_BACKOFF_MS = 30_000
/** A reservation never claimed (the create failed before reaching the driver) is given back after this. */
const RESERVATION_TTL_MS = 60_000
const SWEEP_MS = 15_000
/** A claim refills the pool this much later, once the creates that arrived with it have started. */
const REFILL_DELAY_MS = 100
/** Creates this close together count as one burst. */
const BURST_WINDOW_MS = 5_000

interface Pool {
  key: WarmKey
  ready: Map<string, RuntimeRef>
  filling: number
  /** A refill asked for while the runtime was busy starting sandboxes cold. */
  deferred: boolean
  lastDemand: number
  failedAt: number
  /** When the creates of the current burst arrived (within BURST_WINDOW_MS of now). */
  arrivals: number[]
  /** The largest burst seen, and when: the pool is sized for it until idleMs has passed. */
  peak: number
  peakAt: number
}

export interface WarmPoolOptions {
  /** Containers kept ready per key. */
  size: number
  /** Ready containers a key that asked for more at once may grow to (default: size). */
  maxSize?: number
  /** A key not asked for in this long has its pool removed. */
  idleMs: number
  /** Creates and starts a container for a sandbox id, answering once its agent is ready. */
  start: (key: WarmKey, sandboxId: string) => Promise<RuntimeRef>
  destroy: (ref: RuntimeRef) => Promise<void>
  /** True while sandboxes are being started cold: refills wait (refillDeferred) rather than compete with them. */
  busy?: () => boolean
  logger: Logger
}

export class WarmPool {
  private readonly pools = new Map<string, Pool>()
  private readonly reserved = new Map<string, { ref: RuntimeRef; at: number }>()
  /** Sandbox ids of every container the pool has or is starting. */
  private readonly owned = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(private readonly options: WarmPoolOptions) {}

  /** A sandbox id whose container is ready for this key, or undefined (the caller then starts one cold). */
  reserve(key: WarmKey): string | undefined {
    if (this.options.size === 0 || this.closed) return undefined
    const pool = this.pool(key)
    this.arrived(pool)
    const first = pool.ready.entries().next()
    if (first.done === true) return undefined
    const [sandboxId, ref] = first.value
    pool.ready.delete(sandboxId)
    this.reserved.set(sandboxId, { ref, at: Date.now() })
    // Not at once: the rest of a burst of creates (started cold) goes first, then the pool refills.
    setTimeout(() => this.fill(pool), REFILL_DELAY_MS).unref()
    return sandboxId
  }

  /** The container reserved for this sandbox id, handed over for good. */
  claim(sandboxId: string): RuntimeRef | undefined {
    const entry = this.reserved.get(sandboxId)
    if (entry === undefined) return undefined
    this.reserved.delete(sandboxId)
    this.owned.delete(sandboxId)
    return entry.ref
  }

  /** Someone created a sandbox for this key the slow way: keep containers ready for the next. */
  demand(key: WarmKey): void {
    if (this.options.size === 0 || this.closed) return
    const pool = this.pool(key)
    pool.lastDemand = Date.now()
    this.fill(pool)
  }

  /** How many containers the pool for this key keeps ready now (for tests and metrics). */
  target(key: WarmKey): number {
    const pool = this.pools.get(keyOf(key))
    return pool === undefined ? 0 : this.targetOf(pool)
  }

  /** True for containers the pool holds or is starting: not sandboxes yet, so not the reconciler's. */
  owns(sandboxId: string): boolean {
    return this.owned.has(sandboxId)
  }

  /** Removes every pooled container: they are cheap to make again and nobody's state. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    const entries = [...this.pools.values()].flatMap((p) => [...p.ready.entries()])
    entries.push(...[...this.reserved.entries()].map(([id, r]) => [id, r.ref] as [string, RuntimeRef]))
    this.pools.clear()
    this.reserved.clear()
    await Promise.all(entries.map(([id, ref]) => this.discard(id, ref)))
  }

  private pool(key: WarmKey): Pool {
    const name = keyOf(key)
    let pool = this.pools.get(name)
    if (pool === undefined) {
      pool = { key, ready: new Map(), filling: 0, deferred: false, lastDemand: Date.now(), failedAt: 0, arrivals: [], peak: 0, peakAt: 0 }
      this.pools.set(name, pool)
    }
    this.timer ??= setInterval(() => void this.sweep(), SWEEP_MS).unref()
    return pool
  }

  /** A create asked for this key: counted into the current burst. */
  private arrived(pool: Pool, now = Date.now()): void {
    pool.lastDemand = now
    pool.arrivals = pool.arrivals.filter((at) => now - at < BURST_WINDOW_MS)
    pool.arrivals.push(now)
    if (pool.arrivals.length >= pool.peak || now - pool.peakAt >= this.options.idleMs) {
      pool.peak = pool.arrivals.length
      pool.peakAt = now
    }
  }

  private targetOf(pool: Pool, now = Date.now()): number {
    const { size } = this.options
    const max = Math.max(size, this.options.maxSize ?? size)
    const burst = now - pool.peakAt < this.options.idleMs ? pool.peak : 0
    return Math.min(max, Math.max(size, burst))
  }

  /** The runtime is no longer busy: refill the pools that asked meanwhile. */
  refillDeferred(): void {
    for (const pool of this.pools.values()) {
      if (!pool.deferred) continue
      pool.deferred = false
      this.fill(pool)
    }
  }

  private fill(pool: Pool): void {
    if (Date.now() - pool.failedAt < FILL_BACKOFF_MS) return
    if (this.options.busy?.() === true) {
      pool.deferred = true
      return
    }
    const target = this.targetOf(pool)
    while (!this.closed && pool.ready.size + pool.filling < target) {
      pool.filling++
      const sandboxId = newId('sandbox')
      this.owned.add(sandboxId)
      this.options
        .start(pool.key, sandboxId)
        .then(
          (ref) => {
            if (this.closed || this.pools.get(keyOf(pool.key)) !== pool) return this.discard(sandboxId, ref)
            pool.ready.set(sandboxId, ref)
            return undefined
          },
          (error: unknown) => {
            this.owned.delete(sandboxId)
            pool.failedAt = Date.now()
            this.options.logger.warn({ err: error, template: pool.key.template, workspace_id: pool.key.workspaceId }, 'warm pool: could not start a container')
          },
        )
        .finally(() => pool.filling--)
    }
  }

  private async sweep(now = Date.now()): Promise<void> {
    for (const [name, pool] of this.pools) {
      if (now - pool.lastDemand < this.options.idleMs) {
        // A burst long past: keep only what the key asks for now.
        for (const [sandboxId, ref] of [...pool.ready].slice(this.targetOf(pool, now))) {
          pool.ready.delete(sandboxId)
          await this.discard(sandboxId, ref)
        }
        continue
      }
      this.pools.delete(name)
      for (const [sandboxId, ref] of pool.ready) await this.discard(sandboxId, ref)
    }
    for (const [sandboxId, entry] of this.reserved) {
      if (now - entry.at < RESERVATION_TTL_MS) continue
      this.reserved.delete(sandboxId)
      await this.discard(sandboxId, entry.ref)
    }
    if (this.pools.size === 0 && this.reserved.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  private async discard(sandboxId: string, ref: RuntimeRef): Promise<void> {
    await this.options.destroy(ref).catch((error: unknown) => this.options.logger.warn({ err: error, container: ref.id }, 'warm pool: could not remove a container'))
    this.owned.delete(sandboxId)
  }
}

function keyOf(key: WarmKey): string {
  return `${key.organizationId}/${key.workspaceId}/${key.template}`
}
