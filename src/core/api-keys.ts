import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ApiKeyRecord, Store } from '../store/store.js'
import type { ApiKey, CreatedApiKey } from '../schemas/api-keys.js'
import type { Page } from '../schemas/common.js'
import { attributionOf, listQueryOf } from './attribution.js'
import type { AttributionInput, ListInput } from './attribution.js'
import type { Caller } from './caller.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'

// API keys are shown once and stored only as a SHA-256 hash. A key carries 192 random
// bits, so a fast hash is enough: there is nothing to brute-force. Every request looks
// its key up afresh, so a revoked key stops working at once.

export const API_KEY_PREFIX = 'msk_'
const ROOT_KEY_SETTING = 'root_key_hash'
const ROOT_KEY_MIN_LENGTH = 24
const LAST_USED_RESOLUTION_MS = 60_000

export interface CreateApiKey extends AttributionInput {
  name: string
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

function generateKey(kind: 'root' | 'organization'): string {
  const secret = randomBytes(24).toString('base64url')
  return kind === 'root' ? `${API_KEY_PREFIX}root_${secret}` : `${API_KEY_PREFIX}${secret}`
}

function publicView(record: ApiKeyRecord): ApiKey {
  const { hash: _hash, ...key } = record
  return key
}

export class ApiKeyService {
  // Writes of last_used_at are coalesced to one a minute per key, off the request's path.
  private readonly lastTouched = new Map<string, number>()
  // The root key's hash changes only at bootstrap (a start), so it is read once, not per request.
  private rootHash: Promise<string | undefined> | undefined

  constructor(private readonly store: Store) {}

  async mint(organizationId: string, input: CreateApiKey): Promise<CreatedApiKey> {
    if ((await this.store.organizations.get({}, organizationId)) === undefined) {
      throw notFound('organization', organizationId)
    }
    const key = generateKey('organization')
    const record: ApiKeyRecord = {
      id: newId('apiKey'),
      organization_id: organizationId,
      name: input.name,
      prefix: key.slice(0, API_KEY_PREFIX.length + 8),
      hash: hashApiKey(key),
      ...attributionOf(input),
      created_at: nowIso(),
      last_used_at: null,
      revoked_at: null,
    }
    await this.store.apiKeys.insert(record)
    return { ...publicView(record), key }
  }

  list(organizationId: string, input: ListInput): Promise<Page<ApiKey>> {
    return this.store.apiKeys
      .list({ organization_id: organizationId }, listQueryOf<ApiKeyRecord>(input))
      .then((page) => ({ ...page, data: page.data.map(publicView) }))
  }

  async get(organizationId: string, id: string): Promise<ApiKey> {
    const record = await this.store.apiKeys.get({ organization_id: organizationId }, id)
    if (record === undefined) throw notFound('API key', id)
    return publicView(record)
  }

  /** Revokes the key; revoking a revoked key is a no-op that answers the same. */
  async revoke(organizationId: string, id: string): Promise<ApiKey> {
    const scope = { organization_id: organizationId }
    const record = await this.store.apiKeys.get(scope, id)
    if (record === undefined) throw notFound('API key', id)
    if (record.revoked_at !== null) return publicView(record)
    const revoked = await this.store.apiKeys.update(scope, id, { revoked_at: nowIso() })
    if (revoked === undefined) throw notFound('API key', id)
    return publicView(revoked)
  }

  /** Who a bearer token belongs to; anything else is a 401 that never says why a key failed. */
  async authenticate(token: string | undefined): Promise<Caller> {
    if (token === undefined || token === '') {
      throw new MiosaError('unauthenticated', 'missing API key: send "Authorization: Bearer msk_…"')
    }
    if (!token.startsWith(API_KEY_PREFIX)) {
      throw new MiosaError(
        'unauthenticated',
        'not an API key: the API takes msk_ keys; preview (mp_) and share (ms_) tokens are for preview URLs only',
      )
    }
    const hash = hashApiKey(token)
    const rootHash = await (this.rootHash ??= this.store.settings.get(ROOT_KEY_SETTING))
    if (rootHash !== undefined && timingSafeEqual(Buffer.from(rootHash, 'hex'), Buffer.from(hash, 'hex'))) {
      return { kind: 'root' }
    }
    const record = await this.store.apiKeys.findByHash(hash)
    if (record === undefined || record.revoked_at !== null) {
      throw new MiosaError('unauthenticated', 'invalid or revoked API key')
    }
    this.touch(record)
    return { kind: 'organization', organization_id: record.organization_id, api_key_id: record.id }
  }

  /**
   * Makes sure the platform has a root key. `fromEnv` (MIOSA_ROOT_KEY) wins whenever it is
   * set, so an operator rotates the root key by changing it. Otherwise a key is generated on
   * the first start only and returned so the caller can show it once.
   */
  async bootstrapRootKey(fromEnv: string | undefined): Promise<{ generated: string | undefined }> {
    if (fromEnv !== undefined) {
      if (!fromEnv.startsWith(API_KEY_PREFIX) || fromEnv.length < ROOT_KEY_MIN_LENGTH) {
        throw new MiosaError(
          'invalid',
          `MIOSA_ROOT_KEY must start with "${API_KEY_PREFIX}" and be at least ${ROOT_KEY_MIN_LENGTH} characters long`,
          { details: { field: 'MIOSA_ROOT_KEY' } },
        )
      }
      await this.store.settings.set(ROOT_KEY_SETTING, hashApiKey(fromEnv))
      this.rootHash = undefined
      return { generated: undefined }
    }
    this.rootHash = undefined
    if ((await this.store.settings.get(ROOT_KEY_SETTING)) !== undefined) return { generated: undefined }
    const key = generateKey('root')
    await this.store.settings.set(ROOT_KEY_SETTING, hashApiKey(key))
    return { generated: key }
  }

  private touch(record: ApiKeyRecord): void {
    const now = Date.now()
    if (now - (this.lastTouched.get(record.id) ?? 0) < LAST_USED_RESOLUTION_MS) return
    this.lastTouched.set(record.id, now)
    // Best effort: a failed bookkeeping write must not fail the request it rode on.
    this.store.apiKeys.update({ organization_id: record.organization_id }, record.id, { last_used_at: nowIso() }).catch(() => { /* see above */ })
  }
}
