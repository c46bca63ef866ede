import Fastify, { LogController } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import sjson from 'secure-json-parse'
import { MiosaError } from '../core/errors.js'
import { randomBase32 } from '../core/ids.js'
import type { RateLimiter } from '../core/rate-limiter.js'
import type { Services } from '../core/services.js'
import { passThroughBodies, streamBody } from './body-stream.js'
import { clientErrorResponse, errorBody, frameworkErrorHandler, makeErrorHandler } from './error-handler.js'
import { buildOpenApiDocument } from './openapi.js'
import { limitRequestsPerKey } from './rate-limits.js'
import { authorize, parseBody, parseParams, parseQuery } from './request-context.js'
import type { AnyRoute, AnySocketRoute, RouteContext, SocketContext } from './route.js'
import { routes } from './routes/index.js'
import { attachWebSockets } from './websocket-upgrades.js'

export const API_PREFIXES = ['/api/v1', '/v1'] as const

export interface ApiServerOptions {
  services: Services
  logger: Logger
  bodyLimitBytes: number
  version: string
  /** Readiness: throws when a dependency (the store) cannot serve. */
  checkReady: () => Promise<void>
  /** Requests per API key (rate-limits.ts); none: unlimited. */
  rateLimiter?: RateLimiter | undefined
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function buildApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: options.bodyLimitBytes,
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      // Probes hit these every few seconds; logging each would bury everything else.
      disableRequestLogging: (request) => request.url === '/healthz' || request.url === '/readyz',
    }),
    // A caller's own request id is kept when it is sane, so logs join up across services.
    genReqId: requestId,
    // Path ids are bounded by their schemas (a clear 400 naming the param), and the whole
    // request line by Node's header size limit (431); the router's own 100-character cut
    // answered 414 in Fastify's shape.
    routerOptions: { maxParamLength: 16 * 1024 },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler: answerClientError,
  })

  // JSON or nothing: a text/plain body would reach the schemas as a string; it is a 415 instead.
  app.removeContentTypeParser('text/plain')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, sjson.parse(body as string, { protoAction: 'error', constructorAction: 'error' }))
    } catch (error) {
      done(
        // V8 quotes the start of the text it could not parse: dropped, since a body may carry a secret.
        new MiosaError('invalid', `body: malformed JSON (${(error as Error).message.replace(/, ".*" is not valid JSON$/s, ' is not valid JSON')})`, {
          details: { field: 'body' },
        }),
      )
    }
  })

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  app.setErrorHandler(makeErrorHandler(options.bodyLimitBytes))
  if (options.rateLimiter !== undefined) limitRequestsPerKey(app, options.rateLimiter)
  app.setNotFoundHandler((request, reply) => {
    const error = new MiosaError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)
    return reply.status(404).send(errorBody(error, request.id))
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.checkReady()
      return { status: 'ready' }
    } catch (error) {
      return reply.status(503).send({ status: 'unavailable', reason: (error as Error).message })
    }
  })

  let openapi: unknown
  for (const prefix of API_PREFIXES) {
    app.get(`${prefix}/openapi.json`, async () => (openapi ??= buildOpenApiDocument(routes, options.version)))
    for (const route of routes) registerRoute(app, prefix, route, options.services)
  }
  attachWebSockets(
    app,
    routes.filter((r): r is AnySocketRoute => r.socket !== undefined),
    { services: options.services, prefixes: API_PREFIXES, requestId },
  )
  return app
}

function registerRoute(app: FastifyInstance, prefix: string, route: AnyRoute, services: Services): void {
  const url = `${prefix}${route.path}`
  if (route.socket !== undefined) {
    // Plain HTTP on a WebSocket route: the same checks as an upgrade, then a pointer to the upgrade.
    app.route({
      method: 'GET',
      url,
      handler: async (request) => {
        await route.check(socketContextFor(await contextFor(route, request, services), request))
        throw new MiosaError('invalid', `${route.path} is a WebSocket route: connect with "Connection: Upgrade" and "Upgrade: websocket"`, {
          details: { upgrade: 'websocket' },
        })
      },
    })
    return
  }
  if (route.raw === true) {
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const answer = await route.handler(await contextFor(route, request, services, reply))
      if (answer.kind === 'json') {
        if (route.response === undefined) throw new Error(`${route.method} ${route.path} answered JSON but has no response schema`)
        return reply.status(route.status ?? 200).send(route.response.parse(answer.value))
      }
      return reply
        .status(route.status ?? 200)
        .headers(answer.headers ?? {})
        .type(answer.contentType)
        .send(answer.stream)
    }
    const spec = route.bodyStream
    if (spec === undefined) {
      app.route({ method: route.method, url, handler })
      return
    }
    // Its own encapsulated context: these parsers pass bytes through for this route only.
    void app.register(async (child) => {
      passThroughBodies(child, spec)
      child.route({ method: route.method, url, handler, config: { accepts: spec.contentTypes } })
    })
    return
  }
  app.route({
    method: route.method,
    url,
    handler: async (request, reply) => {
      const result = await route.handler(await contextFor(route, request, services, reply))
      // Responses pass their schema on the way out: a field the schema does not name (a hash, a secret) never leaves.
      return reply.status(route.status ?? 200).send(route.response.parse(result))
    },
  })
}

/** Node's parser refused a request (headers too large, not HTTP): answered in the standard shape, then closed. */
function answerClientError(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  this.log.debug({ err: error }, 'client error')
  // A response already under way on this connection cannot be followed by another status line.
  const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
  if (!socket.writable || answering) {
    socket.destroy()
    return
  }
  socket.end(clientErrorResponse(error, `req_${randomBase32(16)}`))
}

function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  // A caller's own request id is kept when it is sane, so logs join up across services.
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomBase32(16)}`
}

async function contextFor(
  route: AnyRoute,
  request: FastifyRequest,
  services: Services,
  reply?: FastifyReply,
): Promise<RouteContext<unknown, unknown, unknown>> {
  const who = await authorize(route, request.headers, services)
  const hasBody = route.method !== 'GET' && route.method !== 'DELETE'
  const params = parseParams(route, request.params)
  const query = parseQuery(route, request.query)
  const body = route.bodyStream !== undefined ? streamBody(route.bodyStream, request) : hasBody ? parseBody(route, request.body) : undefined
  return { ...who, params, query, body, services, request, reply: reply as FastifyReply }
}

function socketContextFor(ctx: RouteContext<unknown, unknown, unknown>, request: FastifyRequest): SocketContext<unknown, unknown> {
  const { request: _request, reply: _reply, ...rest } = ctx
  return { ...rest, body: undefined, signal: new AbortController().signal, log: request.log, requestId: request.id }
}
