import type { ListQuery } from '../store/store.js'

// External attribution: opaque strings and a string map, stored exactly as given.

export interface Attribution {
  external_user_id: string | null
  external_project_id: string | null
  external_workspace_id: string | null
  metadata: Record<string, string>
}

export interface AttributionInput {
  external_user_id?: string | undefined
  external_project_id?: string | undefined
  external_workspace_id?: string | undefined
  metadata?: Record<string, string> | undefined
}

export interface AttributionPatchInput {
  external_user_id?: string | null | undefined
  external_project_id?: string | null | undefined
  external_workspace_id?: string | null | undefined
  metadata?: Record<string, string> | undefined
}

export function attributionOf(input: AttributionInput): Attribution {
  return {
    external_user_id: input.external_user_id ?? null,
    external_project_id: input.external_project_id ?? null,
    external_workspace_id: input.external_workspace_id ?? null,
    metadata: input.metadata ?? {},
  }
}

/** Only the fields the caller sent: undefined leaves a field alone, null clears it. */
export function attributionPatchOf(input: AttributionPatchInput): Partial<Attribution> {
  const patch: Partial<Attribution> = {}
  if (input.external_user_id !== undefined) patch.external_user_id = input.external_user_id
  if (input.external_project_id !== undefined) patch.external_project_id = input.external_project_id
  if (input.external_workspace_id !== undefined) patch.external_workspace_id = input.external_workspace_id
  if (input.metadata !== undefined) patch.metadata = input.metadata
  return patch
}

/** What every list endpoint accepts: a page request plus attribution filters. */
export interface ListInput extends Omit<AttributionInput, 'metadata'> {
  limit: number
  cursor?: string | undefined
  metadata?: Record<string, string> | undefined
}

export function listQueryOf<T extends Partial<Attribution>>(
  input: ListInput,
  where: ListQuery<T>['where'] = {},
): ListQuery<T> {
  return {
    limit: input.limit,
    cursor: input.cursor,
    metadata: input.metadata,
    where: {
      ...where,
      external_user_id: input.external_user_id,
      external_project_id: input.external_project_id,
      external_workspace_id: input.external_workspace_id,
    } as ListQuery<T>['where'],
  }
}
