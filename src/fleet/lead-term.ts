// One term of leadership: `lead` runs with a signal of its own; the term ends when the
// signal is aborted and `lead` has settled. Shared by every Leadership implementation.

export type Lead = (signal: AbortSignal) => Promise<void> | void

export class LeadTerm {
  private readonly controller = new AbortController()
  /** Settles (never rejects) when `lead` has. */
  readonly settled: Promise<void>

  /** `onFailure` hears a `lead` that rejected while leading (not its reaction to the abort). */
  constructor(lead: Lead, onFailure: (error: unknown) => void) {
    const signal = this.controller.signal
    this.settled = (async () => {
      // `lead` starts once whoever made the term holds it (so isLeader() is true inside).
      await Promise.resolve()
      if (signal.aborted) return
      try {
        await lead(signal)
      } catch (error) {
        if (!signal.aborted) onFailure(error)
        // After the abort a rejection is how `lead` stops (an AbortError), unless it is something else.
        else if (!isAbort(error, signal)) onFailure(error)
      }
    })()
  }

  get aborted(): boolean {
    return this.controller.signal.aborted
  }

  /** Aborts the signal at once; await `settled` to know `lead` has stopped. */
  abort(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new LeadershipLost(reason))
  }
}

export class LeadershipLost extends Error {
  override readonly name = 'AbortError'
}

function isAbort(error: unknown, signal: AbortSignal): boolean {
  return error === signal.reason || (error instanceof Error && error.name === 'AbortError')
}
