import type { Campaign, Leadership } from '../core/leadership.js'
import { type Lead, LeadTerm } from './lead-term.js'

// Leadership for a platform that is one process: nobody else can lead, so the first
// campaign for a name leads at once; another campaign for the same name (a second
// reconciler of one kind in this process) waits until the first stops.

export interface SingleLeadershipOptions {
  onError: (error: unknown, context: string) => void
  /** How long a campaign whose `lead` rejected waits before leading again. Default 1 s. */
  retryMs?: number
}

class SingleCampaign implements Campaign {
  term: LeadTerm | undefined
  releasing: Promise<void> | undefined
  stopped = false
  retryAt = 0
  retryTimer: NodeJS.Timeout | undefined

  constructor(
    readonly name: string,
    readonly lead: Lead,
    private readonly leadership: SingleLeadership,
  ) {}

  isLeader(): boolean {
    return this.term !== undefined && !this.term.aborted
  }

  stop(): Promise<void> {
    return this.leadership.stopCampaign(this)
  }
}

export class SingleLeadership implements Leadership {
  private readonly byName = new Map<string, SingleCampaign[]>()
  private readonly retryMs: number

  constructor(private readonly options: SingleLeadershipOptions) {
    this.retryMs = options.retryMs ?? 1000
  }

  campaign(name: string, lead: Lead): Campaign {
    const campaign = new SingleCampaign(name, lead, this)
    this.byName.set(name, [...(this.byName.get(name) ?? []), campaign])
    this.elect(name)
    return campaign
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].flat().map((campaign) => campaign.stop()))
  }

  /** @internal what Campaign.stop does. */
  async stopCampaign(campaign: SingleCampaign): Promise<void> {
    campaign.stopped = true
    clearTimeout(campaign.retryTimer)
    await this.release(campaign, 'the campaign stopped')
    const rest = (this.byName.get(campaign.name) ?? []).filter((other) => other !== campaign)
    if (rest.length === 0) this.byName.delete(campaign.name)
    else this.byName.set(campaign.name, rest)
    this.elect(campaign.name)
  }

  /** Lets the first campaign that may lead `name` lead, unless one still does. */
  private elect(name: string): void {
    const campaigns = this.byName.get(name) ?? []
    if (campaigns.some((campaign) => campaign.term !== undefined)) return
    const next = campaigns.find((campaign) => !campaign.stopped && Date.now() >= campaign.retryAt)
    if (next === undefined) return
    next.term = new LeadTerm(next.lead, (error) => {
      this.options.onError(error, `leadership: lead of ${name} failed; campaigning again`)
      next.retryAt = Date.now() + this.retryMs
      void this.release(next, 'lead failed').then(() => {
        if (next.stopped) return
        next.retryTimer = setTimeout(() => this.elect(name), this.retryMs)
        this.elect(name)
      })
    })
  }

  private release(campaign: SingleCampaign, reason: string): Promise<void> {
    const term = campaign.term
    if (term === undefined) return Promise.resolve()
    if (campaign.releasing !== undefined) return campaign.releasing
    term.abort(reason)
    campaign.releasing = term.settled.then(() => {
      campaign.term = undefined
      campaign.releasing = undefined
    })
    return campaign.releasing
  }
}
