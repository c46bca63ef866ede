// Requests in flight per upstream address (`host:port`), counted by the edge and read by
// the instance service: the edge balances by least connections, and a draining instance is
// stopped once its last request has finished. One counter per process.

export class InflightRequests {
  private readonly counts = new Map<string, number>()
  private readonly waiters = new Map<string, Set<() => void>>()

  static key(host: string, port: number): string {
    return `${host}:${port}`
  }

  start(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  end(key: string): void {
    const count = (this.counts.get(key) ?? 1) - 1
    if (count > 0) {
      this.counts.set(key, count)
      return
    }
    this.counts.delete(key)
    const waiting = this.waiters.get(key)
    if (waiting === undefined) return
    this.waiters.delete(key)
    for (const wake of waiting) wake()
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0
  }

  /** Resolves once nothing is in flight to `key`, or after `timeoutMs`; answers whether it went idle. */
  idle(key: string, timeoutMs: number): Promise<boolean> {
    if (this.count(key) === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.waiters.get(key)?.delete(wake)
        resolve(false)
      }, timeoutMs)
      let waiting = this.waiters.get(key)
      if (waiting === undefined) this.waiters.set(key, (waiting = new Set()))
      waiting.add(wake)
    })
  }
}
