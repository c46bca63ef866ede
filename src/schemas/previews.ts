import { z } from 'zod'
import { attributionInput, attributionOutput, idOf, listQuery, nameSchema, timestamp } from './common.js'

// Access to a sandbox's previews: preview tokens (mp_…, signed, short-lived, for your own
// signed-in users) and share tokens (ms_…, revocable links for anyone, optionally with a
// password). Token values are in the answer to their creation only.

export const PREVIEW_TOKEN_TTL_MAX_SECONDS = 86_400
export const SHARE_PASSWORD_MIN_LENGTH = 8
export const SHARE_PASSWORD_MAX_LENGTH = 256

export const portSchema = z.number().int().min(1).max(65_535)

const tokenPort = portSchema
  .optional()
  .meta({ description: "The one sandbox port it opens; default: any port of the sandbox (its URL uses the template's default port)" })

export const previewTokenSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    sandbox_id: z.string(),
    port: z.number().nullable().meta({ description: 'The one port it opens; null: any port of the sandbox' }),
    expires_at: timestamp,
    revoked_at: timestamp.nullable(),
    ...attributionOutput,
    created_at: timestamp,
  })
  .meta({ id: 'PreviewToken' })

export const createdPreviewTokenSchema = previewTokenSchema
  .extend({
    token: z.string().meta({ description: 'The token (`mp_…`). Shown once; pass it to the browser, which opens `url`.' }),
    url: z
      .string()
      .nullable()
      .meta({ description: "The preview URL carrying the token (`…?token=mp_…`); null when no port is named and the template has no default port" }),
  })
  .meta({ id: 'CreatedPreviewToken' })

export const createPreviewTokenSchema = z.strictObject({
  sandbox_id: idOf('sandbox'),
  port: tokenPort,
  ttl_seconds: z
    .number()
    .int()
    .min(1)
    .max(PREVIEW_TOKEN_TTL_MAX_SECONDS)
    .meta({ description: `Seconds until it stops working, at most ${PREVIEW_TOKEN_TTL_MAX_SECONDS} (24 hours); not renewable` }),
  ...attributionInput,
})

export const shareTokenSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    workspace_id: z.string(),
    sandbox_id: z.string(),
    port: z.number().nullable().meta({ description: 'The one port it opens; null: any port of the sandbox' }),
    name: z.string(),
    token_prefix: z.string().meta({ description: 'The first characters of the token, to recognise it; never the whole token' }),
    has_password: z.boolean(),
    expires_at: timestamp.nullable(),
    revoked_at: timestamp.nullable(),
    ...attributionOutput,
    created_at: timestamp,
  })
  .meta({ id: 'ShareToken' })

export const createdShareTokenSchema = shareTokenSchema
  .extend({
    token: z.string().meta({ description: 'The token (`ms_…`). Shown once: it is stored only as a hash.' }),
    url: z
      .string()
      .nullable()
      .meta({ description: "The link to share (`…?token=ms_…`); null when no port is named and the template has no default port" }),
  })
  .meta({ id: 'CreatedShareToken' })

export const createShareTokenSchema = z.strictObject({
  sandbox_id: idOf('sandbox'),
  port: tokenPort,
  password: z
    .string()
    .min(SHARE_PASSWORD_MIN_LENGTH)
    .max(SHARE_PASSWORD_MAX_LENGTH)
    .optional()
    .meta({ description: 'Visitors are asked for it on a small page; stored hashed, guesses are rate-limited' }),
  expires_at: z.iso
    .datetime({ offset: true })
    .optional()
    .meta({ description: 'When the link stops working (ISO 8601, in the future); default: never (until revoked)' }),
  name: nameSchema.optional().meta({ description: 'Default: "Share link"' }),
  ...attributionInput,
})

const sandboxFilter = idOf('sandbox').optional().meta({ description: "Only this sandbox's tokens" })

export const listPreviewTokensQuery = listQuery({ sandbox_id: sandboxFilter })
export const listShareTokensQuery = listQuery({ sandbox_id: sandboxFilter })

export type PreviewToken = z.infer<typeof previewTokenSchema>
export type CreatedPreviewToken = z.infer<typeof createdPreviewTokenSchema>
export type CreatePreviewTokenInput = z.input<typeof createPreviewTokenSchema>
export type ShareToken = z.infer<typeof shareTokenSchema>
export type CreatedShareToken = z.infer<typeof createdShareTokenSchema>
export type CreateShareTokenInput = z.input<typeof createShareTokenSchema>
export type PreviewTokenListQuery = z.input<typeof listPreviewTokensQuery>
export type ShareTokenListQuery = z.input<typeof listShareTokensQuery>
