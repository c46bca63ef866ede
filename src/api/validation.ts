import type { z } from 'zod'
import { MiosaError } from '../core/errors.js'

export type InputPart = 'body' | 'query' | 'params'

interface FieldIssue {
  field: string
  message: string
}

/** Parses one part of a request; a failure is a 400 whose message names every bad field. */
export function parseInput<T>(schema: z.ZodType<T>, part: InputPart, value: unknown): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issues = result.error.issues.flatMap((issue) => describeIssue(part, issue))
  const summary = issues.map((i) => `${i.field}: ${i.message}`).join('; ')
  throw new MiosaError('invalid', `invalid ${part}: ${summary}`, { details: { location: part, issues } })
}

/**
 * Every JSON body is an object: `null`, an array, a string or a number is refused before any
 * schema sees it, so no route can take `null` for "no options" (it once rotated the master key).
 */
export function requireJsonObject(body: unknown): Record<string, unknown> {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>
  const got = body === null ? 'null' : Array.isArray(body) ? 'an array' : `a ${typeof body}`
  throw new MiosaError('invalid', `invalid body: body: must be a JSON object, not ${got}`, {
    details: { location: 'body', issues: [{ field: 'body', message: `must be a JSON object, not ${got}` }] },
  })
}

function describeIssue(part: InputPart, issue: z.core.$ZodIssue): FieldIssue[] {
  const at = (path: readonly PropertyKey[]) => (path.length === 0 ? part : path.map(String).join('.'))
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ field: at([...issue.path, key]), message: 'unknown field' }))
  }
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
    return [{ field: at(issue.path), message: `required (${issue.expected})` }]
  }
  return [{ field: at(issue.path), message: issue.message }]
}

/** Gathers `metadata[key]=value` query parameters into one `metadata` object for the list schemas. */
export function gatherMetadataFilters(query: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  let metadata: Record<string, unknown> | undefined
  for (const [name, value] of Object.entries(query)) {
    const key = name.match(/^metadata\[(.+)\]$/)?.[1]
    if (key === undefined) out[name] = value
    else (metadata ??= {})[key] = value
  }
  if (metadata !== undefined) out.metadata = metadata
  return out
}
