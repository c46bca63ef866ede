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
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    const got = body === null ? 'null' : Array.isArray(body) ? 'an array' : `a ${typeof body}`
    throw invalidInput('body', 'body', `must be a JSON object, not ${got}`)
  }
  return refuseBrokenText('body', body) as Record<string, unknown>
}

/**
 * No string in a request (a body's keys and values, a query or path value) may hold a NUL
 * byte or half a surrogate pair: neither is text a name, a command or a path can carry,
 * PostgreSQL refuses to store a NUL, and a file path with one reached the runtime.
 */
export function refuseBrokenText<T>(part: InputPart, value: T): T {
  const stack: Array<[string, unknown]> = [['', value]]
  while (stack.length > 0) {
    const [path, current] = stack.pop() as [string, unknown]
    if (typeof current === 'string') {
      const problem = textProblem(current)
      if (problem !== undefined) throw invalidInput(part, path === '' ? part : path, problem)
    } else if (current !== null && typeof current === 'object') {
      for (const [key, child] of Object.entries(current)) {
        const at = path === '' ? key : `${path}.${key}`
        const problem = textProblem(key)
        if (problem !== undefined) throw invalidInput(part, at, `its name ${problem}`)
        stack.push([at, child])
      }
    }
  }
  return value
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function textProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'holds a NUL byte (\\u0000)'
  if (LONE_SURROGATE.test(text)) return 'holds half of a UTF-16 surrogate pair: not valid Unicode text'
  return undefined
}

function invalidInput(part: InputPart, field: string, message: string): MiosaError {
  return new MiosaError('invalid', `invalid ${part}: ${field}: ${message}`, { details: { location: part, issues: [{ field, message }] } })
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
