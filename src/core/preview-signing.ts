import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Store } from '../store/store.js'

// The platform's preview signing key: 32 random bytes, made once and kept in the store's
// settings, so every API and edge process of the platform signs and verifies alike.
// Preview tokens and access cookies are HMAC-SHA256 over a purpose label and the payload,
// so a value signed for one purpose never verifies as the other.

export const PREVIEW_SIGNING_KEY_SETTING = 'preview_signing_key'

export type SigningPurpose = 'preview-token' | 'access-cookie'

/** Makes sure the platform has a signing key (the first writer wins); answers it. */
export async function ensurePreviewSigningKey(store: Store): Promise<Buffer> {
  const stored = await store.settings.get(PREVIEW_SIGNING_KEY_SETTING)
  const value = stored ?? (await store.settings.setIfAbsent(PREVIEW_SIGNING_KEY_SETTING, randomBytes(32).toString('base64url')))
  const key = Buffer.from(value, 'base64url')
  if (key.length < 32) throw new Error(`the ${PREVIEW_SIGNING_KEY_SETTING} setting is not a 32-byte key`)
  return key
}

export class PreviewSigner {
  private key: Promise<Buffer> | undefined

  constructor(private readonly store: Store) {}

  /** `base64url(JSON(payload)).base64url(HMAC)`. */
  async sign(purpose: SigningPurpose, payload: object): Promise<string> {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url')
    return `${body}.${await this.mac(purpose, body)}`
  }

  /** The payload of a value this platform signed for `purpose`; undefined for anything else. */
  async verify(purpose: SigningPurpose, value: string): Promise<unknown> {
    const dot = value.indexOf('.')
    if (dot <= 0 || dot !== value.lastIndexOf('.') || value.length > 4096) return undefined
    const body = value.slice(0, dot)
    const given = Buffer.from(value.slice(dot + 1), 'base64url')
    const expected = Buffer.from(await this.mac(purpose, body), 'base64url')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown
    } catch {
      return undefined
    }
  }

  private async mac(purpose: SigningPurpose, body: string): Promise<string> {
    const key = await (this.key ??= ensurePreviewSigningKey(this.store).catch((error: unknown) => {
      this.key = undefined
      throw error
    }))
    return createHmac('sha256', key).update(`${purpose}\n${body}`).digest('base64url')
  }
}
