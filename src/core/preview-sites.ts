import type { BrandingRecord, Store } from '../store/store.js'
import type { SandboxService } from './sandboxes.js'
import { LIVE_STATES } from './sandboxes.js'
import { normalizeName } from './tenant-settings.js'

// The edge's questions about a host, answered across organizations (a visitor has no key):
// which sandbox port it names, and whose branding its pages wear. These shapes are the
// ones src/edge/edge-backend.ts speaks in.

/** What the Host header names, before any lookup. */
export interface PreviewRoute {
  /** The sandbox's slug: the DNS label in its preview hostnames. */
  slug: string
  /** The port in the hostname (`3000-<slug>…`); undefined: the sandbox template's default port. */
  port: number | undefined
  /** Set when the host is under a tenant preview domain (`<slug>.preview.example.com` → 'preview.example.com'). */
  tenantDomain?: string | undefined
}

/** A sandbox port the edge may proxy to. */
export interface PreviewSite {
  sandboxId: string
  organizationId: string
  workspaceId: string
  port: number
  /** Anyone may see it: no token or cookie needed. */
  public: boolean
}

export type PreviewBranding = Pick<BrandingRecord, 'logo_url' | 'accent_color' | 'support_url'>

/** How long the edge's pages may show branding that has since changed (elsewhere than this process). */
export const BRANDING_CACHE_MS = 30_000
const BRANDING_CACHE_MAX_ENTRIES = 10_000

export class PreviewSites {
  private readonly brandingCache = new Map<string, { value: PreviewBranding | undefined; at: number }>()

  constructor(
    private readonly deps: {
      store: Store
      sandboxes: SandboxService
      brandingCacheMs?: number
    },
  ) {}

  /**
   * The site a host names: a live sandbox (not destroyed, not failed) and a port (the named one,
   * else its template's default). Under a tenant domain, only once that domain is verified and
   * only for sandboxes of its workspace. Undefined for anything else.
   */
  async resolve(route: PreviewRoute): Promise<PreviewSite | undefined> {
    const sandbox = await this.deps.store.sandboxes.findBySlug(route.slug, LIVE_STATES)
    if (sandbox === undefined) return undefined
    if (route.tenantDomain !== undefined) {
      const tenant = await this.deps.store.tenantSettings.findByPreviewDomain(normalizeName(route.tenantDomain))
      if (tenant === undefined || tenant.preview_domain_verified_at === null || tenant.workspace_id !== sandbox.workspace_id) return undefined
    }
    const port = route.port ?? (await this.deps.sandboxes.defaultPort(sandbox.template))
    if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined
    return {
      sandboxId: sandbox.id,
      organizationId: sandbox.organization_id,
      workspaceId: sandbox.workspace_id,
      port,
      public: sandbox.preview_public,
    }
  }

  /**
   * The tenant's branding for a page about one of its sandboxes (by workspace), or about a
   * host under its (verified) preview domain; undefined: the neutral look. Cached for
   * BRANDING_CACHE_MS; a change made in this process shows at once.
   */
  async branding(of: { workspaceId: string } | { tenantDomain: string }): Promise<PreviewBranding | undefined> {
    const key = 'workspaceId' in of ? `ws:${of.workspaceId}` : `domain:${normalizeName(of.tenantDomain)}`
    const now = Date.now()
    const cached = this.brandingCache.get(key)
    if (cached !== undefined && now - cached.at < (this.deps.brandingCacheMs ?? BRANDING_CACHE_MS)) return cached.value
    const row =
      'workspaceId' in of
        ? await this.deps.store.tenantSettings.findByWorkspace(of.workspaceId)
        : await this.deps.store.tenantSettings.findByPreviewDomain(normalizeName(of.tenantDomain))
    // A page under a tenant domain wears its branding only once the domain is verified.
    const shown = row !== undefined && ('workspaceId' in of || row.preview_domain_verified_at !== null)
    const branding = shown ? row.branding : null
    const value =
      branding === null ? undefined : { logo_url: branding.logo_url, accent_color: branding.accent_color, support_url: branding.support_url }
    if (this.brandingCache.size >= BRANDING_CACHE_MAX_ENTRIES) this.brandingCache.clear()
    this.brandingCache.set(key, { value, at: now })
    return value
  }

  /** Drops cached branding (after a change in this process). */
  forgetBranding(): void {
    this.brandingCache.clear()
  }
}
