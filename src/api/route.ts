import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { z } from 'zod'
import type { Caller } from '../core/caller.js'
import type { Services } from '../core/services.js'

// A route is data: method, path, who may call it, zod schemas for what comes in and
// goes out, and a handler. The same list drives registration, validation, the OpenAPI
// document and the cross-organization test that walks every route.
//
// Three kinds share that shape:
// - JSON routes (the default): the handler returns a value, serialised through `response`.
// - raw routes (`raw`): the handler returns a RawAnswer (a byte stream, server-sent events,
//   NDJSON, or JSON it picked itself); `bodyStream` hands the request body over as a stream.
// - WebSocket routes (`socket`): answered over an upgraded connection.
// All three authenticate and validate params, query and body the same way first, so a
// failure before any byte is streamed is an ordinary JSON error.

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

/** The parts of a context a WebSocket route sees (there is no Fastify request or reply on an upgrade). */
export type SocketContext<P, Q> = Omit<RouteContext<P, Q, undefined>, 'request' | 'reply'> & {
  /** Aborted when the server shuts down. */
  signal: AbortSignal
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void }
  requestId: string
}

/** A response medium other than JSON, for the OpenAPI document. */
export interface MediaDoc {
  contentType: string
  description: string
  /** The schema of the bytes, when they have one (an SSE event's data, an NDJSON line). */
  schema?: z.ZodType | undefined
}

/** What a raw handler answers: bytes it streams, or JSON it chose (validated by the route's `response`). */
export type RawAnswer =
  | { kind: 'stream'; contentType: string; stream: Readable; headers?: Record<string, string> | undefined }
  | { kind: 'json'; value: unknown }

/** A request body passed through as a byte stream instead of being parsed. */
export interface BodyStream {
  /** Accepted media types, or '*' for any. */
  contentTypes: readonly string[] | '*'
  /** Larger bodies are refused with 413 (by Content-Length up front, else as they arrive). */
  limitBytes: number
  description: string
}

/** What a WebSocket route runs once its connection is upgraded. */
export interface SocketSession {
  attach(socket: WebSocket): void
  /** The client went away before the upgrade completed: release what `open` prepared. */
  cancel(): void
}

interface RouteBase<P, Q, B> {
  method: HttpMethod
  /** Path under the API prefix (`/api/v1` and `/v1`), with `:param` segments. */
  path: string
  scope: RouteScope
  summary: string
  tag: string
  params?: z.ZodType<P>
  query?: z.ZodType<Q>
  body?: z.ZodType<B>
  /** HTTP status on success; 201 for creates. */
  status?: number
  /** A valid request body: shown in the OpenAPI document and used by tests that walk every route. */
  example?: unknown
  /** A valid query, where the route requires one: shown in the OpenAPI document and used by the same tests. */
  exampleQuery?: Record<string, string>
}

export interface Route<P = unknown, Q = unknown, B = unknown, R = unknown> extends RouteBase<P, Q, B> {
  response: z.ZodType<R>
  /** Other media the same route can answer with (documentation only; `raw` handlers produce them). */
  produces?: readonly MediaDoc[]
  raw?: false
  bodyStream?: undefined
  socket?: undefined
  handler: (ctx: RouteContext<P, Q, B>) => Promise<z.input<z.ZodType<R>>>
}

export interface RawRoute<P = unknown, Q = unknown, B = unknown, R = unknown> extends RouteBase<P, Q, B> {
  raw: true
  /** The JSON answer, when the handler may give one (`{ kind: 'json' }`). */
  response?: z.ZodType<R> | undefined
  produces: readonly MediaDoc[]
  /** The request body as a stream: `ctx.body` is then a Readable. */
  bodyStream?: BodyStream | undefined
  socket?: undefined
  handler: (ctx: RouteContext<P, Q, B>) => Promise<RawAnswer>
}

export interface SocketRoute<P = unknown, Q = unknown> extends RouteBase<P, Q, undefined> {
  method: 'GET'
  response?: undefined
  produces?: undefined
  raw?: undefined
  bodyStream?: undefined
  /** Describes the conversation over the socket (the OpenAPI document has no words for it). */
  socket: { description: string }
  /**
   * Side-effect free checks (the resource exists in the caller's organization). A plain
   * HTTP request runs these too, then gets a 400 asking for the upgrade, so it learns no
   * more than a WebSocket client would.
   */
  check: (ctx: SocketContext<P, Q>) => Promise<void>
  /** After `check`: prepares everything an HTTP error could still report, then returns what runs on the socket. */
  open: (ctx: SocketContext<P, Q>) => Promise<SocketSession>
}

/** Identity function that lets TypeScript infer P, Q, B and R from the schemas. */
export function defineRoute<P = undefined, Q = undefined, B = undefined, R = unknown>(
  route: Route<P, Q, B, R>,
): Route<P, Q, B, R> {
  return route
}

export function defineRawRoute<P = undefined, Q = undefined, B = undefined, R = unknown>(
  route: Omit<RawRoute<P, Q, B, R>, 'raw'>,
): RawRoute<P, Q, B, R> {
  return { ...route, raw: true }
}

export function defineSocketRoute<P = undefined, Q = undefined>(route: SocketRoute<P, Q>): SocketRoute<P, Q> {
  return route
}

// Routes of different shapes in one list; each was type-checked by its define function.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type AnyJsonRoute = Route<any, any, any, any>
export type AnyRawRoute = RawRoute<any, any, any, any>
export type AnySocketRoute = SocketRoute<any, any>
/* eslint-enable @typescript-eslint/no-explicit-any */
export type AnyRoute = AnyJsonRoute | AnyRawRoute | AnySocketRoute
