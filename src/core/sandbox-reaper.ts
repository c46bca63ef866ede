import type { Store } from '../store/store.js'
import type { Log } from './log.js'
import type { SandboxService } from './sandboxes.js'

/**
 * Applies idle timeouts: a running sandbox unused for its timeout (no exec, file
 * operation, terminal, preview traffic or keep-alive, and no open exec stream or
 * terminal) is stopped when persistent and destroyed otherwise.
 */
export class SandboxReaper {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor(
    private readonly deps: { store: Store; sandboxes: SandboxService; log: Log; intervalMs: number },
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.sweep(), this.deps.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running
  }

  /** One pass; overlapping passes are skipped. */
  sweep(now = Date.now()): Promise<void> {
    this.running ??= (async () => {
      try {
        const running = await this.deps.store.sandboxes.findInStates(['running'])
        for (const record of running) {
          if (!this.deps.sandboxes.isIdle(record, now)) continue
          await this.deps.sandboxes.expire(record, now).catch((error: unknown) => {
            this.deps.log.warn({ sandbox_id: record.id, err: error }, 'could not expire an idle sandbox')
          })
        }
      } catch (error) {
        this.deps.log.warn({ err: error }, 'sandbox reaper pass failed')
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }
}
