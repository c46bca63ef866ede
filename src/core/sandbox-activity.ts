// What counts as use of a sandbox, kept in memory on the hot path (every exec, file
// operation, terminal byte and preview request would otherwise write to the database):
// the last time it was used, and how many exec streams and terminals are open on it.
// The database copy is refreshed at most every FLUSH_MS (and every FLUSH_MS while a
// session is held open); the reaper reads both, and a reaper in another process the
// database copy alone.

const FLUSH_MS = 5_000

export class SandboxActivity {
  private readonly lastUsed = new Map<string, number>()
  private readonly lastFlushed = new Map<string, number>()
  private readonly open = new Map<string, number>()

  constructor(private readonly flush: (sandboxId: string, at: Date) => Promise<void>) {}

  touch(sandboxId: string, now = Date.now()): void {
    this.lastUsed.set(sandboxId, now)
    if (now - (this.lastFlushed.get(sandboxId) ?? 0) >= FLUSH_MS) {
      this.lastFlushed.set(sandboxId, now)
      this.flush(sandboxId, new Date(now)).catch(() => { /* the time stays in memory, which the idle check reads too; a touch after FLUSH_MS writes again */ })
    }
  }

  /**
   * Marks a long-lived session (exec stream, terminal, a WebSocket through the edge) open
   * until the returned function is called. While it is open the stored last use is kept
   * fresh, so a reaper in another process (which cannot see this one's holds) leaves the
   * sandbox awake too.
   */
  hold(sandboxId: string): () => void {
    this.open.set(sandboxId, (this.open.get(sandboxId) ?? 0) + 1)
    this.touch(sandboxId)
    const keepAlive = setInterval(() => this.touch(sandboxId), FLUSH_MS)
    keepAlive.unref()
    let released = false
    return () => {
      if (released) return
      released = true
      clearInterval(keepAlive)
      const left = (this.open.get(sandboxId) ?? 1) - 1
      if (left <= 0) this.open.delete(sandboxId)
      else this.open.set(sandboxId, left)
      this.touch(sandboxId)
    }
  }

  isHeld(sandboxId: string): boolean {
    return (this.open.get(sandboxId) ?? 0) > 0
  }

  /** The later of the in-memory and stored last use. */
  lastUse(sandboxId: string, stored: string): number {
    return Math.max(this.lastUsed.get(sandboxId) ?? 0, Date.parse(stored))
  }

  forget(sandboxId: string): void {
    this.lastUsed.delete(sandboxId)
    this.lastFlushed.delete(sandboxId)
  }
}
