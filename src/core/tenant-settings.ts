import { Resolver } from 'node:dns/promises'
import type { TenantBranding, TenantPreviewDomain } from '../schemas/tenant.js'
import type { BrandingRecord, OrgScope, Store, TenantSettingsRecord } from '../store/store.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { randomBase32 } from './ids.js'
import type { WorkspaceService } from './workspaces.js'

// A workspace's tenant settings: the branding of the pages the edge renders about its
// sandboxes, and its own preview domain. A preview domain is registered, then verified by
// a CNAME (of the domain itself, or of any name under it: a wildcard) to the edge's
// hostname; only then does the edge serve previews under it.

/** The CNAME targets of a name; throws (an error with a DNS `code`) when there are none or the lookup fails. */
export type CnameLookup = (name: string) => Promise<string[]>

/** Answers from DNS meaning "this name has no CNAME", as opposed to "the lookup failed". */
const ABSENT = new Set(['ENODATA', 'ENOTFOUND', 'NXDOMAIN', 'ENONAME'])

/** CNAME lookups through `servers` (ip or ip:port), or the system's resolvers when empty. */
export function dnsCnameLookup(servers: readonly string[], opts: { timeoutMs?: number } = {}): CnameLookup {
  const resolver = new Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 })
  if (servers.length > 0) resolver.setServers([...servers])
  return (name) => resolver.resolveCname(name)
}

export interface TenantSettingsOptions {
  /** The platform's own base domain: no tenant domain may be it or under it. */
  baseDomain: string
  /** What a tenant preview domain must be a CNAME of. */
  edgeHostname: string
  lookupCname?: CnameLookup
  /** Told about every change, so caches of this process (the edge's branding) forget the workspace at once. */
  onChanged?: (workspaceId: string) => Promise<void>
}

export interface SetBranding {
  workspace_id?: string | undefined
  logo_url: string
  accent_color: string
  support_url?: string | undefined
}

export interface SetPreviewDomain {
  workspace_id?: string | undefined
  /** Lowercase, no trailing dot (the schema normalises it). */
  domain: string
}

export class TenantSettingsService {
  private readonly lookupCname: CnameLookup

  constructor(
    private readonly deps: { store: Store; workspaces: WorkspaceService } & TenantSettingsOptions,
  ) {
    this.lookupCname = deps.lookupCname ?? dnsCnameLookup([])
  }

  // ── branding ────────────────────────────────────────────────────────────────

  async getBranding(organizationId: string, workspaceId?: string): Promise<TenantBranding> {
    const scope = { organization_id: organizationId }
    const id = await this.workspace(scope, workspaceId, false)
    return brandingView(id, await this.deps.store.tenantSettings.get(scope, id))
  }

  /** Replaces the workspace's branding (a field left out is cleared). */
  async setBranding(organizationId: string, input: SetBranding): Promise<TenantBranding> {
    const scope = { organization_id: organizationId }
    const id = await this.workspace(scope, input.workspace_id, true)
    const now = nowIso()
    const branding: BrandingRecord = {
      logo_url: input.logo_url,
      accent_color: input.accent_color,
      support_url: input.support_url ?? null,
      updated_at: now,
    }
    const row = await this.deps.store.tenantSettings.upsert(scope, id, { branding, updated_at: now })
    if (row === undefined) throw notFound('workspace', id)
    await this.deps.onChanged?.(id)
    return brandingView(id, row)
  }

  // ── preview domain ──────────────────────────────────────────────────────────

  async getPreviewDomain(organizationId: string, workspaceId?: string): Promise<TenantPreviewDomain> {
    const scope = { organization_id: organizationId }
    const id = await this.workspace(scope, workspaceId, false)
    return this.domainView(id, await this.deps.store.tenantSettings.get(scope, id))
  }

  /** Registers the workspace's preview domain (replacing another one it had), unverified; the same domain again changes nothing. */
  async setPreviewDomain(organizationId: string, input: SetPreviewDomain): Promise<TenantPreviewDomain> {
    const scope = { organization_id: organizationId }
    const domain = input.domain
    this.checkDomain(domain)
    const id = await this.workspace(scope, input.workspace_id, true)
    const current = await this.deps.store.tenantSettings.get(scope, id)
    if (current?.preview_domain === domain) return this.domainView(id, current)
    let row: TenantSettingsRecord | undefined
    try {
      row = await this.deps.store.tenantSettings.upsert(scope, id, {
        preview_domain: domain,
        preview_domain_verified_at: null,
        updated_at: nowIso(),
      })
    } catch (error) {
      if (error instanceof MiosaError && error.code === 'conflict') {
        throw new MiosaError('conflict', `domain: ${domain} is already the preview domain of another workspace`, {
          details: { field: 'domain' },
        })
      }
      throw error
    }
    if (row === undefined) throw notFound('workspace', id)
    await this.deps.onChanged?.(id)
    return this.domainView(id, row)
  }

  /**
   * Checks that the domain, or a name under it (a wildcard record), is a CNAME of the edge's
   * hostname, and marks it verified. Anything else is a 409 saying what DNS answered.
   */
  async verifyPreviewDomain(organizationId: string, input: { workspace_id?: string | undefined }): Promise<TenantPreviewDomain> {
    const scope = { organization_id: organizationId }
    const id = await this.workspace(scope, input.workspace_id, false)
    const current = await this.deps.store.tenantSettings.get(scope, id)
    const domain = current?.preview_domain ?? null
    if (current === undefined || domain === null) {
      throw new MiosaError('conflict', `workspace ${id} has no preview domain: register one with POST /v1/tenant/preview-domain first`)
    }
    const target = normalizeName(this.deps.edgeHostname)
    const names = [domain, `probe-${randomBase32(10)}.${domain}`]
    const answers = await Promise.all(names.map((name) => this.cnamesOf(name)))
    if (answers.some((a) => a.cnames?.some((cname) => normalizeName(cname) === target) === true)) {
      const row = await this.deps.store.tenantSettings.upsert(scope, id, { preview_domain_verified_at: nowIso(), updated_at: nowIso() })
      if (row === undefined) throw notFound('workspace', id)
      await this.deps.onChanged?.(id)
      return this.domainView(id, row)
    }
    const found = answers.map((a, i) => `${names[i]} → ${a.cnames === undefined ? (a.absent ? 'no CNAME' : `lookup failed (${a.error})`) : a.cnames.join(', ')}`)
    if (answers.every((a) => a.cnames === undefined && !a.absent)) {
      throw new MiosaError('unavailable', `could not look up ${domain} in DNS: ${found.join('; ')}`, { details: { field: 'domain', found } })
    }
    throw new MiosaError('conflict', `${domain} is not verified: neither it nor *.${domain} is a CNAME of ${target} (found: ${found.join('; ')})`, {
      details: { field: 'domain', cname_target: target, found },
    })
  }

  /** Removes the workspace's preview domain: previews go back to the platform's hostnames at once. */
  async deletePreviewDomain(organizationId: string, workspaceId?: string): Promise<TenantPreviewDomain> {
    const scope = { organization_id: organizationId }
    const id = await this.workspace(scope, workspaceId, false)
    const current = await this.deps.store.tenantSettings.get(scope, id)
    if (current === undefined || current.preview_domain === null) return this.domainView(id, current)
    const row = await this.deps.store.tenantSettings.upsert(scope, id, {
      preview_domain: null,
      preview_domain_verified_at: null,
      updated_at: nowIso(),
    })
    await this.deps.onChanged?.(id)
    return this.domainView(id, row)
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private async workspace(scope: OrgScope, workspaceId: string | undefined, create: boolean): Promise<string> {
    if (workspaceId === undefined) return this.deps.workspaces.defaultId(scope.organization_id, { create })
    if ((await this.deps.store.workspaces.get(scope, workspaceId)) === undefined) throw notFound('workspace', workspaceId)
    return workspaceId
  }

  private checkDomain(domain: string): void {
    const base = normalizeName(this.deps.baseDomain)
    if (domain === base || domain.endsWith(`.${base}`)) {
      throw new MiosaError('invalid', `domain: ${domain} is under the platform's own domain ${base}; use a domain of your own`, {
        details: { field: 'domain' },
      })
    }
    if (domain === normalizeName(this.deps.edgeHostname)) {
      throw new MiosaError('invalid', `domain: ${domain} is the edge's own hostname`, { details: { field: 'domain' } })
    }
  }

  private async cnamesOf(name: string): Promise<{ cnames?: string[]; absent: boolean; error?: string }> {
    try {
      return { cnames: await this.lookupCname(name), absent: false }
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? (error as Error).message)
      return { absent: ABSENT.has(code), error: code }
    }
  }

  private domainView(workspaceId: string, row: TenantSettingsRecord | undefined): TenantPreviewDomain {
    const target = normalizeName(this.deps.edgeHostname)
    const domain = row?.preview_domain ?? null
    const verifiedAt = domain === null ? null : (row?.preview_domain_verified_at ?? null)
    const instructions =
      domain === null
        ? 'No preview domain: register one with POST /v1/tenant/preview-domain {"domain": "preview.example.com"}.'
        : verifiedAt === null
          ? `Add the DNS record "*.${domain} CNAME ${target}" (or "${domain} CNAME ${target}"), then POST /v1/tenant/preview-domain/verify. ` +
            `Previews are then served at <port>-<sandbox-slug>.${domain}.`
          : `Verified: previews of this workspace are served at <port>-<sandbox-slug>.${domain} (DNS: *.${domain} CNAME ${target}).`
    return { workspace_id: workspaceId, domain, verified: verifiedAt !== null, verified_at: verifiedAt, cname_target: target, instructions }
  }
}

function brandingView(workspaceId: string, row: TenantSettingsRecord | undefined): TenantBranding {
  const branding = row?.branding ?? null
  return {
    workspace_id: workspaceId,
    logo_url: branding?.logo_url ?? null,
    accent_color: branding?.accent_color ?? null,
    support_url: branding?.support_url ?? null,
    updated_at: branding?.updated_at ?? null,
  }
}

/** Lowercase, without the trailing dot of a fully qualified name. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '')
}
