// Who of a fleet does a job that must run in one place at a time (a reconciler, a reaper):
// each process campaigns for the job's name, and one leads it. Implementations: one
// process, always the leader (src/fleet/single-leadership.ts); PostgreSQL session
// advisory locks for a fleet (src/fleet/postgres-leadership.ts); both run
// test/contract/leadership.test.ts.

export interface Leadership {
  /**
   * Campaigns for `name` until stopped. While this campaign leads, `lead` runs with a
   * signal that is aborted the moment leadership is lost (the session that held it
   * ended) or given up (stop, close). `lead` may return at once and keep working
   * (timers it clears on abort), or run until the signal aborts: leadership lasts until
   * lost or stopped either way. A `lead` that rejects is reported, gives up leadership,
   * and campaigns again. At most one campaign of the fleet leads a name at a time, as
   * far as a lost session is noticed at once (a leader whose session ends is aborted
   * without waiting); a leader that dies is replaced within seconds.
   */
  campaign(name: string, lead: (signal: AbortSignal) => Promise<void> | void): Campaign
  /** Stops every campaign (as Campaign.stop) and lets go of the connection, if any. */
  close(): Promise<void>
}

export interface Campaign {
  readonly name: string
  isLeader(): boolean
  /**
   * Stops campaigning. A leader's signal is aborted, then its `lead` is awaited (it
   * should end on the signal), and only then is leadership released, so the next leader
   * never overlaps with this one.
   */
  stop(): Promise<void>
}
