import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { SandboxDisk as SandboxDiskWire } from '../schemas/sandboxes.js'
import type { SandboxRecord, Store } from '../store/store.js'
import { MiosaError } from './errors.js'
import type { Log } from './log.js'

// Disk per sandbox, bounded by measuring: Docker's overlay2 on ext4 (what self-hosters
// mostly run) refuses a per-container size, so the runtime's own accounting of a sandbox's
// writable layer is read periodically and shortly after each file-API write. Past the limit,
// file-API writes and archive uploads are refused until a new measure is under it; exec
// keeps working, so the user can delete what filled it. Measures live in this process.

const MB = 1024 * 1024
/** After a write, the next measure of that sandbox waits at least this long after the last one. */
const MIN_GAP_MS = 1_000

interface Measure {
  usedBytes: number
  measuredAt: string
}

export class SandboxDisk {
  private readonly measures = new Map<string, Measure>()
  /** Measures in flight by sandbox id; a write meanwhile asks for one more after it. */
  private readonly inflight = new Map<string, Promise<void>>()
  private readonly again = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private sweeping: Promise<void> | undefined

  constructor(
    private readonly deps: {
      store: Store
      runtime: RuntimeDriver
      log: Log
      /** The limit in MB; 0: none (nothing is measured). */
      limitMb: number
      intervalMs: number
    },
  ) {}

  private get limitBytes(): number {
    return this.deps.limitMb * MB
  }

  private get enabled(): boolean {
    return this.deps.limitMb > 0 && this.deps.runtime.diskUsage !== undefined
  }

  start(): void {
    if (!this.enabled || this.timer !== undefined) return
    this.timer = setInterval(() => void this.sweep(), this.deps.intervalMs)
    this.timer.unref()
    // A restarted platform learns at once which sandboxes are already over.
    void this.sweep()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.sweeping
    await Promise.allSettled(this.inflight.values())
  }

  /** Measures every running sandbox once; overlapping passes are skipped. */
  sweep(): Promise<void> {
    if (!this.enabled) return Promise.resolve()
    this.sweeping ??= (async () => {
      try {
        const running = await this.deps.store.sandboxes.findInStates(['running'])
        const ids = new Set(running.map((r) => r.id))
        // Stopped or destroyed since: their measure would be stale when they come back.
        for (const id of this.measures.keys()) if (!ids.has(id)) this.measures.delete(id)
        for (const record of running) await this.measure(record)
      } catch (error) {
        this.deps.log.warn({ err: error }, 'sandbox disk pass failed')
      } finally {
        this.sweeping = undefined
      }
    })()
    return this.sweeping
  }

  /** Measures one sandbox; what it sees was on disk when it was called (one measure at a time per sandbox). */
  async measure(record: Pick<SandboxRecord, 'id' | 'runtime_ref'>): Promise<void> {
    const pending = this.inflight.get(record.id)
    if (pending !== undefined) {
      // That one may have looked before what the caller wants counted: wait, then look again.
      await pending
      const next = this.inflight.get(record.id)
      if (next !== undefined) return next
    }
    return this.startMeasure(record)
  }

  private startMeasure(record: Pick<SandboxRecord, 'id' | 'runtime_ref'>): Promise<void> {
    const measureDisk = this.deps.runtime.diskUsage?.bind(this.deps.runtime)
    if (!this.enabled || record.runtime_ref === null || measureDisk === undefined) return Promise.resolve()
    const ref = record.runtime_ref
    const work = (async () => {
      try {
        const used = await measureDisk(ref)
        if (used === undefined) this.measures.delete(record.id)
        else this.note(record.id, used)
      } catch (error) {
        this.deps.log.warn({ sandbox_id: record.id, err: error }, 'measuring a sandbox disk failed')
      } finally {
        this.inflight.delete(record.id)
        if (this.again.delete(record.id)) this.afterWrite(record)
      }
    })()
    this.inflight.set(record.id, work)
    return work
  }

  /**
   * Throws payload_too_large when the sandbox's last measure is over its limit. 413 rather
   * than 429 quota_exceeded: waiting and retrying does not help, freeing space does; and it
   * is what a full /tmp answers through the file API already.
   */
  checkWrite(record: Pick<SandboxRecord, 'id'>): void {
    if (!this.enabled) return
    const measure = this.measures.get(record.id)
    if (measure === undefined || measure.usedBytes <= this.limitBytes) return
    const limitMb = this.deps.limitMb
    const usedMb = (measure.usedBytes / MB).toFixed(1)
    throw new MiosaError(
      'payload_too_large',
      `sandbox ${record.id} uses ${usedMb} MB of disk, over its ${limitMb} MB limit (measured ${measure.measuredAt}): ` +
        'delete files (exec still works) before writing more',
      { details: { resource: 'disk', limit_bytes: this.limitBytes, used_bytes: measure.usedBytes, measured_at: measure.measuredAt } },
    )
  }

  /** A file-API write landed: measure again soon (coalesced, so a burst of writes costs a measure or two). */
  afterWrite(record: Pick<SandboxRecord, 'id' | 'runtime_ref'>): void {
    if (!this.enabled) return
    if (this.inflight.has(record.id)) {
      this.again.add(record.id)
      return
    }
    const last = this.measures.get(record.id)
    const wait = last === undefined ? 0 : Math.max(0, MIN_GAP_MS - (Date.now() - Date.parse(last.measuredAt)))
    const run = () => void this.measure(record)
    if (wait === 0) run()
    else setTimeout(run, wait).unref()
  }

  /** What GET shows: the last measure and the limit; null when there is no limit or no measure yet. */
  usageOf(record: Pick<SandboxRecord, 'id' | 'state'>): SandboxDiskWire | null {
    if (!this.enabled || record.state !== 'running') return null
    const measure = this.measures.get(record.id)
    if (measure === undefined) return null
    return {
      used_bytes: measure.usedBytes,
      limit_bytes: this.limitBytes,
      measured_at: measure.measuredAt,
      exceeded: measure.usedBytes > this.limitBytes,
    }
  }

  private note(id: string, usedBytes: number): void {
    const before = this.measures.get(id)
    this.measures.set(id, { usedBytes, measuredAt: new Date().toISOString() })
    const over = usedBytes > this.limitBytes
    const wasOver = before !== undefined && before.usedBytes > this.limitBytes
    if (over && !wasOver) this.deps.log.warn({ sandbox_id: id, used_bytes: usedBytes, limit_bytes: this.limitBytes }, 'sandbox over its disk limit: file writes refused')
    if (!over && wasOver) this.deps.log.info({ sandbox_id: id, used_bytes: usedBytes }, 'sandbox back under its disk limit')
  }
}
