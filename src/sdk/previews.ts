import type {
  CreatePreviewTokenInput,
  CreateShareTokenInput,
  CreatedPreviewToken,
  CreatedShareToken,
  PreviewToken,
  ShareToken,
} from '../schemas/previews.js'
import { Resource } from './resource.js'
import type { ListParams } from './resource.js'

// Access to sandbox previews. Mint tokens from your backend with your API key; hand only
// the token (or its url) to the browser.

export type TokenListParams = ListParams & { sandbox_id?: string }

/**
 * Preview tokens (`mp_…`): signed, short-lived (at most 24 h), not renewable.
 *
 * ```ts
 * const { url } = await miosa.previewTokens.create({ sandbox_id, port: 3000, ttl_seconds: 3600 })
 * ```
 */
export class PreviewTokens extends Resource<PreviewToken, TokenListParams> {
  /** The token value (and `url`, which carries it) are in this answer only. */
  create(input: CreatePreviewTokenInput): Promise<CreatedPreviewToken> {
    return this.post(this.path, input)
  }

  /** Revokes it: the edge refuses it, and cookies it opened, within seconds. */
  revoke(id: string): Promise<PreviewToken> {
    return this.transport.request('DELETE', this.itemPath(id))
  }
}

/** Share tokens (`ms_…`): revocable links for anyone who has them, optionally with a password and an expiry. */
export class ShareTokens extends Resource<ShareToken, TokenListParams> {
  /** The token value (and `url`, which carries it) are in this answer only. */
  create(input: CreateShareTokenInput): Promise<CreatedShareToken> {
    return this.post(this.path, input)
  }

  /** Revokes it: the link stops working within seconds. */
  revoke(id: string): Promise<ShareToken> {
    return this.transport.request('DELETE', this.itemPath(id))
  }
}
