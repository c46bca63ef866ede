// What counts as use of a sandbox, kept in memory on the hot path (every exec, file
// operation, terminal byte and preview request would otherwise write to the database):
// the last time it was used, and how many exec streams and terminals are open on it.
// The database copy is refreshed at most every FLUSH_MS; the reaper reads both.

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

  /** Marks a long-lived session (exec stream, terminal) open until the returned function is called. */
  hold(sandboxId: string): () => void {
    this.open.set(sandboxId, (this.open.get(sandboxId) ?? 0) + 1)
    this.touch(sandboxId)
    let released = false
    return () => {
      if (released) return
      released = true
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
