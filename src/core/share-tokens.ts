import { createHash, randomBytes } from 'node:crypto'
import type { Page } from '../schemas/common.js'
import type { CreatedShareToken, ShareToken } from '../schemas/previews.js'
import type { ShareTokenRecord, Store } from '../store/store.js'
import { attributionOf, listQueryOf } from './attribution.js'
import type { AttributionInput, ListInput } from './attribution.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import { hashPassword } from './passwords.js'
import { expectPreviewable } from './preview-tokens.js'
import type { SandboxService } from './sandboxes.js'

// Share tokens (ms_…): revocable links to a sandbox preview for anyone who has them, like a
// document editor's share link. The value is random, shown once and stored as a SHA-256
// hash (192 random bits leave nothing to brute-force); an optional password is stored as a
// salted scrypt hash, and the edge rate-limits guesses at it.

export const SHARE_TOKEN_PREFIX = 'ms_'
/** Characters of the value kept for display: the prefix and six more. */
const DISPLAY_PREFIX_LENGTH = SHARE_TOKEN_PREFIX.length + 6

export interface CreateShareToken extends AttributionInput {
  sandbox_id: string
  port?: number | undefined
  password?: string | undefined
  /** ISO 8601, in the future. */
  expires_at?: string | undefined
  name?: string | undefined
}

export interface ListShareTokens extends ListInput {
  sandbox_id?: string | undefined
}

export function hashShareToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export function publicShareToken(record: ShareTokenRecord): ShareToken {
  const { token_hash: _hash, password_hash, ...rest } = record
  return { ...rest, has_password: password_hash !== null }
}

export class ShareTokenService {
  constructor(
    private readonly deps: {
      store: Store
      sandboxes: SandboxService
      /** Told about every revocation, so caches of this process forget the token at once. */
      onRevoked?: (tokenId: string) => Promise<void>
    },
  ) {}

  async create(organizationId: string, input: CreateShareToken): Promise<CreatedShareToken> {
    const scope = { organization_id: organizationId }
    let expiresAt: string | null = null
    if (input.expires_at !== undefined) {
      const at = Date.parse(input.expires_at)
      if (!Number.isFinite(at) || at <= Date.now()) {
        throw new MiosaError('invalid', 'expires_at: must be a time in the future', { details: { field: 'expires_at' } })
      }
      expiresAt = new Date(at).toISOString()
    }
    const sandbox = await this.deps.sandboxes.record(scope, input.sandbox_id)
    expectPreviewable(sandbox)
    const token = `${SHARE_TOKEN_PREFIX}${randomBytes(24).toString('base64url')}`
    const record: ShareTokenRecord = {
      id: newId('token'),
      organization_id: organizationId,
      workspace_id: sandbox.workspace_id,
      sandbox_id: sandbox.id,
      port: input.port ?? null,
      name: input.name ?? 'Share link',
      token_hash: hashShareToken(token),
      token_prefix: token.slice(0, DISPLAY_PREFIX_LENGTH),
      password_hash: input.password === undefined ? null : await hashPassword(input.password),
      expires_at: expiresAt,
      revoked_at: null,
      ...attributionOf(input),
      created_at: nowIso(),
    }
    await this.deps.store.shareTokens.insert(record)
    const url = await this.deps.sandboxes.previewUrlFor(sandbox, record.port)
    return {
      ...publicShareToken(record),
      token,
      url: url === undefined ? null : this.deps.sandboxes.previewUrls.withToken(url, token),
    }
  }

  async list(organizationId: string, input: ListShareTokens): Promise<Page<ShareToken>> {
    const scope = { organization_id: organizationId }
    if (input.sandbox_id !== undefined) await this.deps.sandboxes.record(scope, input.sandbox_id)
    const page = await this.deps.store.shareTokens.list(scope, listQueryOf<ShareTokenRecord>(input, { sandbox_id: input.sandbox_id }))
    return { data: page.data.map(publicShareToken), next_cursor: page.next_cursor }
  }

  async get(organizationId: string, id: string): Promise<ShareToken> {
    const record = await this.deps.store.shareTokens.get({ organization_id: organizationId }, id)
    if (record === undefined) throw notFound('share token', id)
    return publicShareToken(record)
  }

  /** Revokes the link: the edge refuses it (and cookies made from it) within seconds. Revoking twice answers the same. */
  async revoke(organizationId: string, id: string): Promise<ShareToken> {
    const scope = { organization_id: organizationId }
    const record = await this.deps.store.shareTokens.get(scope, id)
    if (record === undefined) throw notFound('share token', id)
    if (record.revoked_at !== null) return publicShareToken(record)
    const revoked = await this.deps.store.shareTokens.update(scope, id, { revoked_at: nowIso() })
    if (revoked === undefined) throw notFound('share token', id)
    await this.deps.onRevoked?.(id)
    return publicShareToken(revoked)
  }
}
