import type { FastifyReply, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import type { Caller } from '../core/caller.js'
import type { Services } from '../core/services.js'

// A route is data: method, path, who may call it, zod schemas for what comes in and
// goes out, and a handler. The same list drives registration, validation, the OpenAPI
// document and the cross-organization test that walks every route.

/**
 * - public: no key (health, the OpenAPI document)
 * - root: the platform root key only; organization keys get 403
 * - organization: an organization key only; everything it touches is scoped to that organization
 * - any: any valid key (whoami)
 */
export type RouteScope = 'public' | 'root' | 'organization' | 'any'

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'

export interface RouteContext<P, Q, B> {
  caller: Caller
  /** The caller's organization; only on `organization` routes. */
  organizationId: string
  params: P
  query: Q
  body: B
  services: Services
  request: FastifyRequest
  reply: FastifyReply
}

export interface Route<P = unknown, Q = unknown, B = unknown, R = unknown> {
  method: HttpMethod
  /** Path under the API prefix (`/api/v1` and `/v1`), with `:param` segments. */
  path: string
  scope: RouteScope
  summary: string
  tag: string
  params?: z.ZodType<P>
  query?: z.ZodType<Q>
  body?: z.ZodType<B>
  response: z.ZodType<R>
  /** HTTP status on success; 201 for creates. */
  status?: number
  /** A valid request body: shown in the OpenAPI document and used by tests that walk every route. */
  example?: unknown
  handler: (ctx: RouteContext<P, Q, B>) => Promise<z.input<z.ZodType<R>>>
}

/** Identity function that lets TypeScript infer P, Q, B and R from the schemas. */
export function defineRoute<P = undefined, Q = undefined, B = undefined, R = unknown>(
  route: Route<P, Q, B, R>,
): Route<P, Q, B, R> {
  return route
}

// Routes of different shapes in one list; each was type-checked by defineRoute.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = Route<any, any, any, any>
