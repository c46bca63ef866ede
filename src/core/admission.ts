import { MiosaError } from './errors.js'

// Admission control for sandbox creations. Starting containers is the one thing a tenant
// can ask for by the hundred, and each start costs the Docker daemon and the CPU far more
// than a request: unbounded, a burst of creations saturates both, and every other
// tenant's lifecycle call (a resume's container start and agent boot) waits behind it.
// So creations run at most `concurrency` at a time, taking turns between organizations
// (round robin), each organization queueing at most `queuePerOrganization`; beyond that a
// creation is refused with 429 rather than queued for minutes. Lifecycle calls (stop,
// resume, exec, files) never queue here; a resume even goes ahead of creations not yet
// started (`ahead`), since it must boot a container as a creation does.

export interface AdmissionLimits {
  /** Creations running at once, over all organizations. */
  concurrency: number
  /** Creations an organization may have waiting for a turn; more answer 429. */
  queuePerOrganization: number
}

/** A creation's place: `run` waits for its turn; `cancel` gives the place back unused. */
export interface CreationTicket {
  run<T>(work: () => Promise<T>): Promise<T>
  cancel(): void
}

export interface CreationAdmission {
  readonly limits: AdmissionLimits
  /** A place in the organization's queue; throws `rate_limited` when the queue is full. */
  enter(organizationId: string): CreationTicket
  /**
   * Runs a lifecycle call (a resume) ahead of creations: no creation starts while it runs,
   * so it shares the daemon and the CPU only with those already running.
   */
  ahead<T>(work: () => Promise<T>): Promise<T>
}

/** Used for the Retry-After of a refusal until creations have been timed. */
const INITIAL_ESTIMATE_MS = 1000

export class FairCreationQueue implements CreationAdmission {
  private running = 0
  /** Lifecycle calls running ahead of creations. */
  private priority = 0
  /** Organizations with creations waiting, in turn order; each with its waiting starts, oldest first. */
  private readonly waiting = new Map<string, Array<() => void>>()
  /** Places handed out and not yet running, per organization (what the queue bound counts). */
  private readonly queued = new Map<string, number>()
  /** A moving average of how long a creation runs: what a refusal's Retry-After is estimated from. */
  private averageMs = INITIAL_ESTIMATE_MS

  constructor(readonly limits: AdmissionLimits) {
    if (!(limits.concurrency >= 1) || !(limits.queuePerOrganization >= 1)) {
      throw new RangeError('admission needs concurrency ≥ 1 and queuePerOrganization ≥ 1')
    }
  }

  enter(organizationId: string): CreationTicket {
    const queued = this.queued.get(organizationId) ?? 0
    if (queued >= this.limits.queuePerOrganization) {
      const retryAfterSeconds = Math.max(1, Math.ceil((this.averageMs * (queued / this.limits.concurrency)) / 1000))
      throw new MiosaError(
        'rate_limited',
        `too many sandbox creations waiting: at most ${this.limits.queuePerOrganization} per organization queue behind ${this.limits.concurrency} running at once; retry in ${retryAfterSeconds} s`,
        {
          details: {
            limit: 'sandbox_creations_queued',
            queue_per_organization: this.limits.queuePerOrganization,
            concurrency: this.limits.concurrency,
            retry_after_seconds: retryAfterSeconds,
          },
        },
      )
    }
    this.queued.set(organizationId, queued + 1)
    let state: 'queued' | 'running' | 'done' = 'queued'
    const leaveQueue = () => {
      const left = (this.queued.get(organizationId) ?? 1) - 1
      if (left === 0) this.queued.delete(organizationId)
      else this.queued.set(organizationId, left)
    }
    return {
      run: async <T>(work: () => Promise<T>): Promise<T> => {
        if (state !== 'queued') throw new Error('an admission ticket runs once')
        await this.turn(organizationId)
        state = 'running'
        leaveQueue()
        const started = performance.now()
        try {
          return await work()
        } finally {
          state = 'done'
          this.averageMs = this.averageMs * 0.8 + (performance.now() - started) * 0.2
          this.running--
          this.next()
        }
      },
      cancel: () => {
        if (state !== 'queued') return
        state = 'done'
        leaveQueue()
      },
    }
  }

  async ahead<T>(work: () => Promise<T>): Promise<T> {
    this.priority++
    try {
      return await work()
    } finally {
      this.priority--
      this.next()
    }
  }

  /** Creations running and waiting now (for tests and logs). */
  stats(): { running: number; waiting: number } {
    let waiting = 0
    for (const starts of this.waiting.values()) waiting += starts.length
    return { running: this.running, waiting }
  }

  /** Resolves when the organization's creation may start (counted as running from then). */
  private turn(organizationId: string): Promise<void> {
    if (this.running < this.limits.concurrency && this.waiting.size === 0 && this.priority === 0) {
      this.running++
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const starts = this.waiting.get(organizationId)
      if (starts === undefined) this.waiting.set(organizationId, [resolve])
      else starts.push(resolve)
    })
  }

  /** Starts the next waiting creation: the first organization in turn order, which then goes to the back. */
  private next(): void {
    while (this.running < this.limits.concurrency && this.priority === 0) {
      const first = this.waiting.entries().next()
      if (first.done === true) return
      const [organizationId, starts] = first.value
      const start = starts.shift()
      this.waiting.delete(organizationId)
      if (starts.length > 0) this.waiting.set(organizationId, starts)
      if (start === undefined) continue
      this.running++
      start()
    }
  }
}

/** No admission control: every creation runs at once (the behaviour before limits). */
export const UNLIMITED_ADMISSION: CreationAdmission = {
  limits: { concurrency: Infinity, queuePerOrganization: Infinity },
  enter: () => ({ run: (work) => work(), cancel: () => {} }),
  ahead: (work) => work(),
}
