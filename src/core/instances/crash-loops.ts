// Crash-loop backoff per environment: each failure (an exit, a failed health check, a start
// that threw) doubles the wait before the reconciler starts another instance, up to a
// minute; an instance that stays healthy long enough ends the loop.

const BACKOFF_BASE_MS = 1000
const BACKOFF_MAX_MS = 60_000
/** How long an instance must stay healthy before earlier crashes stop counting towards the backoff. */
export const CRASH_LOOP_RESET_MS = 30_000

export interface CrashLoop {
  failures: number
  nextStartAt: number
  lastExitCode: number | null
  lastLogs: string[]
  /** Whether the current wait was recorded as a `backoff` event already. */
  announced: boolean
}

export class CrashLoops {
  private readonly loops = new Map<string, CrashLoop>()

  get(key: string): CrashLoop | undefined {
    return this.loops.get(key)
  }

  /** One more failure in the environment: the next start waits longer. */
  note(key: string, exitCode: number | null, lines: string[]): void {
    const crash = this.loops.get(key) ?? { failures: 0, nextStartAt: 0, lastExitCode: null, lastLogs: [], announced: false }
    crash.failures++
    crash.nextStartAt = Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (crash.failures - 1))
    crash.lastExitCode = exitCode ?? crash.lastExitCode
    if (lines.length > 0) crash.lastLogs = lines
    crash.announced = false
    this.loops.set(key, crash)
  }

  /** The environment serves again: starts are no longer held back. */
  reset(key: string): void {
    this.loops.delete(key)
  }
}
