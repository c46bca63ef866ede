import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { Campaign, Leadership } from '../core/leadership.js'
import { type ConnectionConfig, DedicatedConnection, withTimeout } from './dedicated-connection.js'
import { type Lead, LeadTerm } from './lead-term.js'

// Leadership for a fleet: whoever holds a PostgreSQL session advisory lock on a name's
// key leads it. The lock belongs to the session, so when a leader's process dies (or its
// connection is cut) PostgreSQL lets go of it, and another process's next try (every
// retryMs) takes it. Each process keeps one session of its own for all its campaigns; a
// lock is re-entrant within a session, so campaigns of one process for the same name
// take turns here before asking PostgreSQL.

export interface PostgresLeadershipOptions {
  /** A connection string or pg config: a session of its own, never one from the store's pool. */
  connection: ConnectionConfig
  onError: (error: unknown, context: string) => void
  /** How often a campaign that does not lead tries again. Default 1 s. */
  retryMs?: number
  /** How often the session is checked, and how long the check may take; a failed check ends every lead. Default 2 s. */
  heartbeatMs?: number
  backoff?: { initialMs?: number; maxMs?: number }
}

/** The advisory lock key of a name: the first 8 bytes of a SHA-256, stable across processes and versions. */
export function leadershipKey(name: string): string {
  return createHash('sha256').update(`miosa:leadership:${name}`).digest().readBigInt64BE(0).toString()
}

/** Opens the session (rejects when PostgreSQL cannot be reached) and returns the leadership. */
export async function openPostgresLeadership(options: PostgresLeadershipOptions): Promise<PostgresLeadership> {
  const leadership = new PostgresLeadership(options)
  await leadership.open()
  return leadership
}

const QUERY_TIMEOUT_MS = 5000

class PostgresCampaign implements Campaign {
  readonly key: string
  term: LeadTerm | undefined
  /** The session whose lock this term holds. */
  lockedOn: pg.Client | undefined
  releasing: Promise<void> | undefined
  stopped = false
  retryAt = 0

  constructor(
    readonly name: string,
    readonly lead: Lead,
    private readonly leadership: PostgresLeadership,
  ) {
    this.key = leadershipKey(name)
  }

  isLeader(): boolean {
    return this.term !== undefined && !this.term.aborted
  }

  stop(): Promise<void> {
    return this.leadership.stopCampaign(this)
  }
}

export class PostgresLeadership implements Leadership {
  private readonly connection: DedicatedConnection
  private readonly campaigns = new Set<PostgresCampaign>()
  /** Which campaign of this process holds (or is still releasing) each key. */
  private readonly holders = new Map<string, PostgresCampaign>()
  private readonly retryMs: number
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private closed = false

  constructor(private readonly options: PostgresLeadershipOptions) {
    this.retryMs = options.retryMs ?? 1000
    this.connection = new DedicatedConnection({
      connection: options.connection,
      applicationName: 'miosa-leadership',
      heartbeatMs: options.heartbeatMs ?? 2000,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      onError: options.onError,
      onUp: () => void this.tick(),
      onDown: (error) => this.sessionLost(error),
    })
  }

  async open(): Promise<void> {
    await this.connection.open()
    this.timer = setInterval(() => void this.tick(), this.retryMs)
  }

  campaign(name: string, lead: Lead): Campaign {
    const campaign = new PostgresCampaign(name, lead, this)
    this.campaigns.add(campaign)
    void this.tick()
    return campaign
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await Promise.all([...this.campaigns].map((campaign) => campaign.stop()))
    await Promise.all([...this.holders.values()].map((campaign) => campaign.releasing))
    await this.connection.close()
  }

  /** @internal what Campaign.stop does. */
  async stopCampaign(campaign: PostgresCampaign): Promise<void> {
    campaign.stopped = true
    this.campaigns.delete(campaign)
    await this.release(campaign, 'the campaign stopped')
  }

  /** Tries the lock of every campaign that may lead and does not; never runs twice at once. */
  private async tick(): Promise<void> {
    const client = this.connection.current()
    if (this.ticking || this.closed || client === undefined) return
    this.ticking = true
    try {
      for (const campaign of this.campaigns) {
        if (campaign.term !== undefined || this.holders.has(campaign.key) || Date.now() < campaign.retryAt) continue
        const { rows } = await withTimeout(
          client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [campaign.key]),
          QUERY_TIMEOUT_MS,
          'taking a leadership lock',
        )
        if (rows[0]?.ok !== true) continue
        if (this.connection.current() !== client) break
        if (campaign.stopped || this.holders.has(campaign.key)) {
          // Stopped while asking (or taken by a campaign of this process: the lock is
          // re-entrant): give back the one hold just taken.
          await this.unlock(client, campaign.key)
          continue
        }
        this.start(campaign, client)
      }
    } catch (error) {
      this.options.onError(error, 'leadership: campaigning')
      this.connection.drop(client, error instanceof Error ? error : new Error(String(error)))
    } finally {
      this.ticking = false
    }
  }

  private start(campaign: PostgresCampaign, client: pg.Client): void {
    this.holders.set(campaign.key, campaign)
    campaign.lockedOn = client
    campaign.term = new LeadTerm(campaign.lead, (error) => {
      this.options.onError(error, `leadership: lead of ${campaign.name} failed; campaigning again`)
      campaign.retryAt = Date.now() + this.retryMs
      void this.release(campaign, 'lead failed')
    })
  }

  /** Aborts the term at once, waits for `lead` to settle, then unlocks (if the session that locked is still the live one). */
  private release(campaign: PostgresCampaign, reason: string): Promise<void> {
    const term = campaign.term
    if (term === undefined) return Promise.resolve()
    if (campaign.releasing !== undefined) return campaign.releasing
    term.abort(reason)
    campaign.releasing = (async () => {
      await term.settled
      const client = this.connection.current()
      if (client !== undefined && client === campaign.lockedOn) await this.unlock(client, campaign.key)
      if (this.holders.get(campaign.key) === campaign) this.holders.delete(campaign.key)
      campaign.term = undefined
      campaign.lockedOn = undefined
      campaign.releasing = undefined
    })()
    return campaign.releasing
  }

  private async unlock(client: pg.Client, key: string): Promise<void> {
    try {
      await withTimeout(client.query('SELECT pg_advisory_unlock($1::bigint)', [key]), QUERY_TIMEOUT_MS, 'releasing a leadership lock')
    } catch (error) {
      // Unlocking failed, so the session is in doubt: ending it lets go of every lock it held.
      this.options.onError(error, 'leadership: releasing')
      this.connection.drop(client, error instanceof Error ? error : new Error(String(error)))
    }
  }

  /** The session ended: every lock it held is gone, so every lead ends now. */
  private sessionLost(error: Error): void {
    if (this.holders.size > 0) this.options.onError(error, 'leadership: the session ended; every lead of this process is aborted')
    for (const campaign of this.holders.values()) void this.release(campaign, 'the PostgreSQL session that held leadership ended')
  }
}
