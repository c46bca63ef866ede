import type { SetBrandingInput, SetPreviewDomainInput, TenantBranding, TenantPreviewDomain } from '../schemas/tenant.js'
import type { Transport } from './transport.js'

// A workspace's tenant settings. Without workspace_id, the organization's first workspace.

export interface WorkspaceParam {
  workspace_id?: string
}

/** The look of the pages the edge renders for your end users (no miosa wordmark on them). */
export class TenantBrandingApi {
  constructor(
    private readonly transport: Transport,
    private readonly path: string,
  ) {}

  get(params: WorkspaceParam = {}): Promise<TenantBranding> {
    return this.transport.request('GET', this.path, { query: { ...params } })
  }

  /** Replaces the branding; edges show it within 60 seconds. */
  set(input: SetBrandingInput): Promise<TenantBranding> {
    return this.transport.request('PUT', this.path, { body: input })
  }
}

/** Your own preview domain: previews at `<port>-<sandbox-slug>.<domain>` once verified. */
export class TenantPreviewDomainApi {
  constructor(
    private readonly transport: Transport,
    private readonly path: string,
  ) {}

  get(params: WorkspaceParam = {}): Promise<TenantPreviewDomain> {
    return this.transport.request('GET', this.path, { query: { ...params } })
  }

  /** Registers it (unverified); the answer names the CNAME record to add before `verify`. */
  set(input: SetPreviewDomainInput): Promise<TenantPreviewDomain> {
    return this.transport.request('POST', this.path, { body: input })
  }

  /** Checks the CNAME; throws a MiosaError (conflict) saying what DNS answered when it is not there yet. */
  verify(params: WorkspaceParam = {}): Promise<TenantPreviewDomain> {
    return this.transport.request('POST', `${this.path}/verify`, { body: params })
  }

  delete(params: WorkspaceParam = {}): Promise<TenantPreviewDomain> {
    return this.transport.request('DELETE', this.path, { query: { ...params } })
  }
}

export class Tenant {
  readonly branding: TenantBrandingApi
  readonly previewDomain: TenantPreviewDomainApi

  constructor(transport: Transport, api: string) {
    this.branding = new TenantBrandingApi(transport, `${api}/tenant/branding`)
    this.previewDomain = new TenantPreviewDomainApi(transport, `${api}/tenant/preview-domain`)
  }
}
