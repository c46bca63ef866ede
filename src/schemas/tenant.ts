import { z } from 'zod'
import { idOf, timestamp } from './common.js'

// A workspace's tenant settings: the branding of the pages the edge renders for it, and
// its own preview domain. Values that end up in a page are held to a strict shape here
// (https URLs without quotes or brackets, hex colours); the edge escapes them as well.

const URL_MAX_LENGTH = 2048

/** An https URL with nothing in it that could close an attribute or open a tag. */
export const httpsUrlSchema = z
  .string()
  .max(URL_MAX_LENGTH)
  .regex(/^https:\/\/[^\s"'<>`\\]+$/i, 'must be an https:// URL (no spaces, quotes or angle brackets)')
  .refine((value) => {
    try {
      const url = new URL(value)
      return url.protocol === 'https:' && url.hostname !== '' && url.username === '' && url.password === ''
    } catch {
      return false
    }
  }, 'must be an https:// URL with a host and no credentials')

export const accentColorSchema = z
  .string()
  .regex(/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/, 'must be a hex colour: #rgb or #rrggbb')
  .meta({ description: 'Hex colour of headings and links on error pages', example: '#0f766e' })

const DNS_NAME =
  /^(?=.{1,253}\.?$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?$/i

/** A DNS name of at least two labels, lowercased, without a trailing dot. */
export const domainSchema = z
  .string()
  .trim()
  .max(254)
  .regex(DNS_NAME, 'must be a DNS name such as preview.example.com')
  .transform((value) => value.toLowerCase().replace(/\.$/, ''))

const workspaceField = idOf('workspace')
  .optional()
  .meta({ description: "Default: the organization's first workspace" })

export const tenantQuery = z.strictObject({ workspace_id: workspaceField })

export const brandingSchema = z
  .object({
    workspace_id: z.string(),
    logo_url: z.string().nullable(),
    accent_color: z.string().nullable(),
    support_url: z.string().nullable(),
    updated_at: timestamp.nullable().meta({ description: 'When it was last set; null: never (the neutral look)' }),
  })
  .meta({ id: 'TenantBranding' })

export const setBrandingSchema = z.strictObject({
  workspace_id: workspaceField,
  logo_url: httpsUrlSchema.meta({ description: 'HTTPS URL of your logo (PNG or SVG)' }),
  accent_color: accentColorSchema,
  support_url: httpsUrlSchema.optional().meta({ description: 'A link shown on error pages for end-user support' }),
})

export const previewDomainSchema = z
  .object({
    workspace_id: z.string(),
    domain: z.string().nullable().meta({ description: 'The registered preview domain; null: none' }),
    verified: z.boolean(),
    verified_at: timestamp.nullable(),
    cname_target: z.string().meta({ description: 'What the domain (or *.domain) must be a CNAME of' }),
    instructions: z.string(),
  })
  .meta({ id: 'TenantPreviewDomain' })

export const setPreviewDomainSchema = z.strictObject({
  workspace_id: workspaceField,
  domain: domainSchema.meta({ description: 'e.g. preview.yourproduct.com; previews are then served at <port>-<sandbox-slug>.<domain>' }),
})

export const verifyPreviewDomainSchema = z.strictObject({ workspace_id: workspaceField })

export type TenantBranding = z.infer<typeof brandingSchema>
export type SetBrandingInput = z.input<typeof setBrandingSchema>
export type TenantPreviewDomain = z.infer<typeof previewDomainSchema>
export type SetPreviewDomainInput = z.input<typeof setPreviewDomainSchema>
export type VerifyPreviewDomainInput = z.input<typeof verifyPreviewDomainSchema>
