import type { Store } from '../store/store.js'
import { API_KEY_PREFIX } from './api-keys.js'
import { verifyPassword } from './passwords.js'
import type { PreviewSigner } from './preview-signing.js'
import type { PreviewSite } from './preview-sites.js'
import { PREVIEW_TOKEN_PREFIX, isPreviewTokenClaims } from './preview-tokens.js'
import { SHARE_TOKEN_PREFIX, hashShareToken } from './share-tokens.js'

// Who may see a private preview. A visitor brings a token in the URL once (mp_… or ms_…)
// and gets a signed access cookie for that host; every later request shows the cookie.
// Cookies and tokens are checked by signature, expiry, sandbox and port, and against
// revocation (looked up at most every few seconds per token). API keys never open a
// preview. Refusals say what to do, never why in detail.

export type AccessRefusal = {
  ok: false
  status: 401 | 403 | 429
  /** Shown to the visitor: says what to do (ask for a new link, …), never why in detail. */
  message: string
  /** A share token that needs its password: the edge shows the password page. */
  passwordRequired?: boolean
}

export type AccessGrant = {
  ok: true
  /** Value of the access cookie to set for this host. */
  cookie: string
  maxAgeSeconds: number
}

/** What an access cookie carries (signed): which kind of token it came from, its id, sandbox, port and expiry. */
export interface AccessClaims {
  k: 'mp' | 'ms'
  i: string
  s: string
  p: number | null
  /** Unix seconds. */
  e: number
}

export interface PreviewAccessOptions {
  /** How long a token's revocation state is trusted before it is looked up again (at most 5 s). */
  revocationCacheMs?: number
  /** Wrong share-link passwords allowed per token and client address within `guessWindowMs`. */
  guessLimit?: number
  guessWindowMs?: number
  /** The longest a share link's cookie lasts (the link itself may last longer). */
  shareCookieMaxSeconds?: number
  now?: () => number
}

export const REVOCATION_CACHE_MS = 5000
export const GUESS_LIMIT = 5
export const GUESS_WINDOW_MS = 15 * 60_000
export const SHARE_COOKIE_MAX_SECONDS = 12 * 3600
const MAX_TRACKED = 10_000

const NEW_LINK = 'Ask whoever sent it for a new link.'

function refuse(status: AccessRefusal['status'], message: string, passwordRequired?: boolean): AccessRefusal {
  return passwordRequired === true ? { ok: false, status, message, passwordRequired } : { ok: false, status, message }
}

function isAccessClaims(value: unknown): value is AccessClaims {
  if (typeof value !== 'object' || value === null) return false
  const c = value as Record<string, unknown>
  return (c.k === 'mp' || c.k === 'ms') && isPreviewTokenClaims(c)
}

export class PreviewAccess {
  /** `<kind>:<token id>` → whether it was revoked (or is gone), and when that was looked up. */
  private readonly revocations = new Map<string, { revoked: boolean; at: number }>()
  /** `<token id> <client ip>` → times of wrong passwords within the window. */
  private readonly guesses = new Map<string, number[]>()
  private readonly options: Required<Omit<PreviewAccessOptions, 'now'>>
  private readonly now: () => number

  constructor(
    private readonly deps: { store: Store; signer: PreviewSigner } & PreviewAccessOptions,
  ) {
    this.options = {
      revocationCacheMs: Math.min(deps.revocationCacheMs ?? REVOCATION_CACHE_MS, REVOCATION_CACHE_MS),
      guessLimit: deps.guessLimit ?? GUESS_LIMIT,
      guessWindowMs: deps.guessWindowMs ?? GUESS_WINDOW_MS,
      shareCookieMaxSeconds: deps.shareCookieMaxSeconds ?? SHARE_COOKIE_MAX_SECONDS,
    }
    this.now = deps.now ?? Date.now
  }

  /**
   * A token from the URL exchanged for an access cookie to `site`. A share token with a
   * password needs `password` (refused with passwordRequired until given; wrong guesses are
   * limited per token and client address). Anything else, an API key included, is refused.
   */
  async exchange(site: PreviewSite, token: string, o: { password?: string | undefined; clientIp: string }): Promise<AccessGrant | AccessRefusal> {
    if (token.startsWith(API_KEY_PREFIX)) {
      return refuse(401, 'API keys never open a preview. Open the preview with a preview or share link instead.')
    }
    if (token.startsWith(PREVIEW_TOKEN_PREFIX)) return this.exchangePreviewToken(site, token)
    if (token.startsWith(SHARE_TOKEN_PREFIX)) return this.exchangeShareToken(site, token, o)
    return refuse(401, `This link is not valid. ${NEW_LINK}`)
  }

  /** Whether the access cookie's value admits this site: signed here, unexpired, for this sandbox and port, its token not revoked. */
  async admits(site: PreviewSite, cookie: string): Promise<boolean> {
    const claims = await this.deps.signer.verify('access-cookie', cookie)
    if (!isAccessClaims(claims)) return false
    if (claims.e * 1000 <= this.now()) return false
    if (!this.fits(claims, site)) return false
    return !(await this.isRevoked(claims.k, claims.i, false))
  }

  /** Forgets what is known of a token's revocation (it was just revoked in this process). */
  forget(tokenId: string): void {
    this.revocations.delete(`mp:${tokenId}`)
    this.revocations.delete(`ms:${tokenId}`)
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private async exchangePreviewToken(site: PreviewSite, token: string): Promise<AccessGrant | AccessRefusal> {
    const claims = await this.deps.signer.verify('preview-token', token.slice(PREVIEW_TOKEN_PREFIX.length))
    if (!isPreviewTokenClaims(claims)) return refuse(401, `This preview link is not valid. ${NEW_LINK}`)
    if (claims.e * 1000 <= this.now()) return refuse(401, `This preview link has expired. ${NEW_LINK}`)
    if (!this.fits(claims, site)) return refuse(403, 'This link is for another preview.')
    if (await this.isRevoked('mp', claims.i, true)) return refuse(401, `This preview link has been revoked. ${NEW_LINK}`)
    return this.grant({ k: 'mp', i: claims.i, s: claims.s, p: claims.p, e: claims.e })
  }

  private async exchangeShareToken(
    site: PreviewSite,
    token: string,
    o: { password?: string | undefined; clientIp: string },
  ): Promise<AccessGrant | AccessRefusal> {
    const record = token.length > 200 ? undefined : await this.deps.store.shareTokens.findByHash(hashShareToken(token))
    if (record === undefined) return refuse(401, `This share link is not valid. ${NEW_LINK}`)
    const now = this.now()
    this.revocations.set(`ms:${record.id}`, { revoked: record.revoked_at !== null, at: now })
    if (record.revoked_at !== null) return refuse(401, `This share link has been revoked. ${NEW_LINK}`)
    const expiresMs = record.expires_at === null ? undefined : Date.parse(record.expires_at)
    if (expiresMs !== undefined && expiresMs <= now) return refuse(401, `This share link has expired. ${NEW_LINK}`)
    if (record.sandbox_id !== site.sandboxId || (record.port !== null && record.port !== site.port)) {
      return refuse(403, 'This link is for another preview.')
    }
    if (record.password_hash !== null) {
      const key = `${record.id} ${o.clientIp}`
      if (this.recentGuesses(key, now).length >= this.options.guessLimit) {
        return refuse(429, 'Too many wrong passwords. Wait a few minutes, then try again.')
      }
      if (o.password === undefined || o.password === '') return refuse(401, 'This preview is protected by a password.', true)
      if (!(await verifyPassword(o.password, record.password_hash))) {
        this.recordGuess(key, now)
        return refuse(401, 'Wrong password. Try again.', true)
      }
    }
    const cap = Math.floor(now / 1000) + this.options.shareCookieMaxSeconds
    const e = expiresMs === undefined ? cap : Math.min(cap, Math.floor(expiresMs / 1000))
    return this.grant({ k: 'ms', i: record.id, s: record.sandbox_id, p: record.port, e })
  }

  private async grant(claims: AccessClaims): Promise<AccessGrant> {
    const cookie = await this.deps.signer.sign('access-cookie', claims)
    return { ok: true, cookie, maxAgeSeconds: Math.max(1, claims.e - Math.floor(this.now() / 1000)) }
  }

  /** The token names this sandbox, and this port or any. */
  private fits(claims: { s: string; p: number | null }, site: PreviewSite): boolean {
    return claims.s === site.sandboxId && (claims.p === null || claims.p === site.port)
  }

  private async isRevoked(kind: 'mp' | 'ms', id: string, fresh: boolean): Promise<boolean> {
    const key = `${kind}:${id}`
    const now = this.now()
    const cached = this.revocations.get(key)
    if (!fresh && cached !== undefined && now - cached.at < this.options.revocationCacheMs) return cached.revoked
    const record = kind === 'mp' ? await this.deps.store.previewTokens.findById(id) : await this.deps.store.shareTokens.findById(id)
    const revoked = record === undefined || record.revoked_at !== null
    if (this.revocations.size >= MAX_TRACKED) this.sweep(this.revocations, (v) => now - v.at >= this.options.revocationCacheMs)
    this.revocations.set(key, { revoked, at: now })
    return revoked
  }

  private recentGuesses(key: string, now: number): number[] {
    const times = (this.guesses.get(key) ?? []).filter((t) => now - t < this.options.guessWindowMs)
    if (times.length === 0) this.guesses.delete(key)
    else this.guesses.set(key, times)
    return times
  }

  private recordGuess(key: string, now: number): void {
    if (this.guesses.size >= MAX_TRACKED) {
      this.sweep(this.guesses, (times) => times.every((t) => now - t >= this.options.guessWindowMs))
    }
    this.guesses.set(key, [...this.recentGuesses(key, now), now])
  }

  /** Drops stale entries; if that frees nothing, the oldest half (a flood of distinct keys must not grow memory without bound). */
  private sweep<V>(map: Map<string, V>, stale: (value: V) => boolean): void {
    for (const [key, value] of map) if (stale(value)) map.delete(key)
    if (map.size < MAX_TRACKED) return
    let drop = Math.floor(map.size / 2)
    for (const key of map.keys()) {
      if (drop-- <= 0) break
      map.delete(key)
    }
  }
}
