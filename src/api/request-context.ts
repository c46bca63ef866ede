import type { IncomingHttpHeaders } from 'node:http'
import { z } from 'zod'
import { requireOrganization, requireRoot } from '../core/caller.js'
import type { Caller } from '../core/caller.js'
import { MiosaError } from '../core/errors.js'
import type { Services } from '../core/services.js'
import type { AnyRoute } from './route.js'
import { gatherMetadataFilters, parseInput, refuseBrokenText, requireJsonObject } from './validation.js'

// Who is calling and what they sent, the same way for every kind of route (JSON, raw,
// WebSocket upgrade). Who before what: an unauthenticated or out-of-scope caller learns
// nothing from validation errors.

const NO_INPUT = z.strictObject({})

export interface Authorized {
  caller: Caller
  /** The caller's organization on `organization` routes; '' elsewhere. */
  organizationId: string
}

export async function authorize(route: AnyRoute, headers: IncomingHttpHeaders, services: Services): Promise<Authorized> {
  const caller: Caller = route.scope === 'public' ? { kind: 'anonymous' } : await services.apiKeys.authenticate(bearerToken(headers))
  if (route.scope === 'root') requireRoot(caller)
  const organizationId = route.scope === 'organization' ? requireOrganization(caller).organization_id : ''
  return { caller, organizationId }
}

export function parseParams(route: AnyRoute, params: unknown): unknown {
  return parseInput(route.params ?? NO_INPUT, 'params', refuseBrokenText('params', params))
}

export function parseQuery(route: AnyRoute, query: unknown): unknown {
  return parseInput(route.query ?? NO_INPUT, 'query', refuseBrokenText('query', gatherMetadataFilters((query ?? {}) as Record<string, unknown>)))
}

/** No body at all is an empty object; any JSON body must be an object (`null` is no "nothing"). */
export function parseBody(route: AnyRoute, body: unknown): unknown {
  return parseInput(route.body ?? NO_INPUT, 'body', body === undefined ? {} : requireJsonObject(body))
}

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const header = headers.authorization
  if (header === undefined) return undefined
  const match = header.match(/^Bearer\s+(\S+)\s*$/i)
  if (match === null) throw new MiosaError('unauthenticated', 'Authorization header must be "Bearer msk_…"')
  return match[1]
}
