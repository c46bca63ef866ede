import type { Page } from '../schemas/common.js'
import type { CreatedPreviewToken, PreviewToken } from '../schemas/previews.js'
import type { PreviewTokenRecord, SandboxRecord, Store } from '../store/store.js'
import { attributionOf, listQueryOf } from './attribution.js'
import type { AttributionInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import type { PreviewSigner } from './preview-signing.js'
import type { SandboxService } from './sandboxes.js'

// Preview tokens (mp_…): short-lived, signed by the platform, for a tenant's own signed-in
// users. The value carries its id, sandbox, port and expiry and is verified by signature;
// the record is kept only to list and revoke it. Not renewable: mint a new one.

export const PREVIEW_TOKEN_PREFIX = 'mp_'

export interface CreatePreviewToken extends AttributionInput {
  sandbox_id: string
  port?: number | undefined
  ttl_seconds: number
}

export interface ListPreviewTokens extends ListInput {
  sandbox_id?: string | undefined
}

/** What an mp_ value says once its signature checks out. */
export interface PreviewTokenClaims {
  /** Token id. */
  i: string
  /** Sandbox id. */
  s: string
  /** Port, or null for any port of the sandbox. */
  p: number | null
  /** Expiry, unix seconds. */
  e: number
}

export function isPreviewTokenClaims(value: unknown): value is PreviewTokenClaims {
  if (typeof value !== 'object' || value === null) return false
  const c = value as Record<string, unknown>
  return (
    typeof c.i === 'string' &&
    typeof c.s === 'string' &&
    (c.p === null || (typeof c.p === 'number' && Number.isInteger(c.p))) &&
    typeof c.e === 'number' &&
    Number.isFinite(c.e)
  )
}

/** A sandbox whose previews can still be opened (a destroyed one has none). */
export function expectPreviewable(sandbox: SandboxRecord): void {
  if (sandbox.state === 'destroyed') {
    throw new MiosaError('conflict', `sandbox ${sandbox.id} is destroyed: it has no previews`, { details: { state: sandbox.state } })
  }
}

export class PreviewTokenService {
  constructor(
    private readonly deps: {
      store: Store
      sandboxes: SandboxService
      signer: PreviewSigner
      /** Told about every revocation, so caches of this process forget the token at once. */
      onRevoked?: (tokenId: string) => Promise<void>
    },
  ) {}

  async create(organizationId: string, input: CreatePreviewToken): Promise<CreatedPreviewToken> {
    const scope = { organization_id: organizationId }
    const sandbox = await this.deps.sandboxes.record(scope, input.sandbox_id)
    expectPreviewable(sandbox)
    const now = Date.now()
    const expiresAt = Math.floor(now / 1000) + input.ttl_seconds
    const record: PreviewTokenRecord = {
      id: newId('token'),
      organization_id: organizationId,
      workspace_id: sandbox.workspace_id,
      sandbox_id: sandbox.id,
      port: input.port ?? null,
      expires_at: new Date(expiresAt * 1000).toISOString(),
      revoked_at: null,
      ...attributionOf(input),
      created_at: new Date(now).toISOString(),
    }
    const claims: PreviewTokenClaims = { i: record.id, s: sandbox.id, p: record.port, e: expiresAt }
    const token = `${PREVIEW_TOKEN_PREFIX}${await this.deps.signer.sign('preview-token', claims)}`
    await this.deps.store.previewTokens.insert(record)
    const url = await this.deps.sandboxes.previewUrlFor(sandbox, record.port)
    return { ...record, token, url: url === undefined ? null : this.deps.sandboxes.previewUrls.withToken(url, token) }
  }

  async list(organizationId: string, input: ListPreviewTokens): Promise<Page<PreviewToken>> {
    const scope = { organization_id: organizationId }
    if (input.sandbox_id !== undefined) await this.deps.sandboxes.record(scope, input.sandbox_id)
    return this.deps.store.previewTokens.list(scope, listQueryOf<PreviewTokenRecord>(input, { sandbox_id: input.sandbox_id }))
  }

  async get(organizationId: string, id: string): Promise<PreviewToken> {
    const record = await this.deps.store.previewTokens.get({ organization_id: organizationId }, id)
    if (record === undefined) throw notFound('preview token', id)
    return record
  }

  /** Revokes the token: the edge refuses it (and cookies made from it) within seconds. Revoking twice answers the same. */
  async revoke(organizationId: string, id: string): Promise<PreviewToken> {
    const scope = { organization_id: organizationId }
    const record = await this.deps.store.previewTokens.get(scope, id)
    if (record === undefined) throw notFound('preview token', id)
    if (record.revoked_at !== null) return record
    const revoked = await this.deps.store.previewTokens.update(scope, id, { revoked_at: nowIso() })
    if (revoked === undefined) throw notFound('preview token', id)
    await this.deps.onRevoked?.(id)
    return revoked
  }
}
