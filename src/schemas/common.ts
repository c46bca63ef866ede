import { z } from 'zod'
import { SLUG_MAX_LENGTH, SLUG_PATTERN } from '../core/slugs.js'
import type { IdKind } from '../core/ids.js'
import { ID_PREFIXES } from '../core/ids.js'

// Building blocks of every wire schema. Request schemas are strict (an unknown
// field is a 400 naming it); response schemas describe what the server returns.

export const METADATA_MAX_KEYS = 50
export const METADATA_KEY_MAX_LENGTH = 40
export const METADATA_VALUE_MAX_LENGTH = 500
export const EXTERNAL_ID_MAX_LENGTH = 255
export const NAME_MAX_LENGTH = 100

/** An id of one resource kind. Only its shape is checked here; existence is the service's job. */
export function idOf(kind: IdKind) {
  return z
    .string()
    .min(1)
    .max(64)
    .meta({ description: `${kind} id (\`${ID_PREFIXES[kind]}_…\`)`, 'x-id-prefix': ID_PREFIXES[kind] })
}

export const timestamp = z.string().meta({ description: 'ISO 8601 timestamp (UTC)', example: '2026-11-22T14:38:00.000Z' })

export const nameSchema = z.string().trim().min(1).max(NAME_MAX_LENGTH)

export const slugSchema = z
  .string()
  .max(SLUG_MAX_LENGTH)
  .regex(SLUG_PATTERN, 'must be lowercase letters, digits and single hyphens (`--` is reserved: it separates a deployment from its environment in URLs), starting and ending with a letter or digit')
  .meta({ description: 'DNS-label-safe name used in hostnames' })

export const metadataSchema = z
  .record(z.string().min(1).max(METADATA_KEY_MAX_LENGTH), z.string().max(METADATA_VALUE_MAX_LENGTH))
  .refine((m) => Object.keys(m).length <= METADATA_MAX_KEYS, { message: `at most ${METADATA_MAX_KEYS} keys` })
  .meta({ description: 'Your own string key-value pairs, stored as-is' })

const externalId = z.string().min(1).max(EXTERNAL_ID_MAX_LENGTH)

/** External attribution accepted on every creatable resource; stored as-is. */
export const attributionInput = {
  external_user_id: externalId.optional(),
  external_project_id: externalId.optional(),
  external_workspace_id: externalId.optional(),
  metadata: metadataSchema.optional(),
}

/** The same fields on update: null clears an external id. */
export const attributionPatch = {
  external_user_id: externalId.nullable().optional(),
  external_project_id: externalId.nullable().optional(),
  external_workspace_id: externalId.nullable().optional(),
  metadata: metadataSchema.optional(),
}

export const attributionOutput = {
  external_user_id: z.string().nullable(),
  external_project_id: z.string().nullable(),
  external_workspace_id: z.string().nullable(),
  metadata: z.record(z.string(), z.string()),
}

export const ATTRIBUTION_FILTERS = ['external_user_id', 'external_project_id', 'external_workspace_id'] as const

export const LIST_LIMIT_MAX = 200
export const LIST_LIMIT_DEFAULT = 50

/**
 * Query of a list endpoint: cursor pagination, external-id filters and
 * `metadata[key]=value` filters (gathered into `metadata` before validation).
 */
export function listQuery<const F extends z.ZodRawShape>(filters: F) {
  return z.strictObject({
    limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(LIST_LIMIT_DEFAULT),
    cursor: z.string().min(1).max(500).optional(),
    external_user_id: externalId.optional(),
    external_project_id: externalId.optional(),
    external_workspace_id: externalId.optional(),
    metadata: z.record(z.string(), z.string()).optional(),
    ...filters,
  })
}

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    data: z.array(item),
    next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page' }),
  })
}

export interface Page<T> {
  data: T[]
  next_cursor: string | null
}

export const idParams = (kind: IdKind) => z.strictObject({ id: idOf(kind) })

export const deletedSchema = z.object({ id: z.string(), deleted: z.literal(true) })
