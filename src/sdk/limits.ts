import type { LimitsPatch, LimitsReport } from '../schemas/quotas.js'
import type { Transport } from './transport.js'

// Quotas: what an organization and each of its workspaces may hold, and what they hold now.

export class Limits {
  constructor(
    private readonly transport: Transport,
    private readonly api: string,
  ) {}

  /** An organization's limits and use (the root key: any organization; an organization key: its own). */
  organization(organizationId: string): Promise<LimitsReport> {
    return this.transport.request('GET', `${this.api}/organizations/${encodeURIComponent(organizationId)}/limits`)
  }

  /** A workspace's limits (its own, else the organization's) and use. */
  workspace(workspaceId: string): Promise<LimitsReport> {
    return this.transport.request('GET', `${this.api}/workspaces/${encodeURIComponent(workspaceId)}/limits`)
  }

  /** Root key: sets an organization's limits; null returns one to the platform default. */
  setOrganization(organizationId: string, limits: LimitsPatch): Promise<LimitsReport> {
    return this.transport.request('PATCH', `${this.api}/organizations/${encodeURIComponent(organizationId)}`, { body: { limits } })
  }

  /** Organization key: sets a workspace's limits within the organization's; null returns one to the organization's. */
  async setWorkspace(workspaceId: string, limits: LimitsPatch): Promise<LimitsReport> {
    await this.transport.request('PATCH', `${this.api}/workspaces/${encodeURIComponent(workspaceId)}`, { body: { limits } })
    return this.workspace(workspaceId)
  }
}
