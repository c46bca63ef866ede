import Fastify, { LogController } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import sjson from 'secure-json-parse'
import { z } from 'zod'
import { requireOrganization, requireRoot } from '../core/caller.js'
import type { Caller } from '../core/caller.js'
import { MiosaError } from '../core/errors.js'
import { randomBase32 } from '../core/ids.js'
import type { Services } from '../core/services.js'
import { errorBody, makeErrorHandler } from './error-handler.js'
import { buildOpenApiDocument } from './openapi.js'
import type { AnyRoute, RouteContext } from './route.js'
import { routes } from './routes/index.js'
import { gatherMetadataFilters, parseInput } from './validation.js'

export const API_PREFIXES = ['/api/v1', '/v1'] as const

export interface ApiServerOptions {
  services: Services
  logger: Logger
  bodyLimitBytes: number
  version: string
  /** Readiness: throws when a dependency (the store) cannot serve. */
  checkReady: () => Promise<void>
}

const NO_INPUT = z.strictObject({})
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
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomBase32(16)}`
    },
  })

  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, sjson.parse(body as string, { protoAction: 'error', constructorAction: 'error' }))
    } catch (error) {
      done(
        new MiosaError('invalid', `body: malformed JSON (${(error as Error).message})`, {
          details: { field: 'body' },
        }),
      )
    }
  })

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  app.setErrorHandler(makeErrorHandler(options.bodyLimitBytes))
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
    for (const route of routes) {
      app.route({
        method: route.method,
        url: `${prefix}${route.path}`,
        handler: async (request, reply) => {
          const result = await route.handler(await contextFor(route, request, reply, options.services))
          // Responses pass their schema on the way out: a field the schema does not name (a hash, a secret) never leaves.
          return reply.status(route.status ?? 200).send(route.response.parse(result))
        },
      })
    }
  }
  return app
}

async function contextFor(
  route: AnyRoute,
  request: FastifyRequest,
  reply: RouteContext<unknown, unknown, unknown>['reply'],
  services: Services,
): Promise<RouteContext<unknown, unknown, unknown>> {
  // Who before what: an unauthenticated or out-of-scope caller learns nothing from validation errors.
  const caller: Caller =
    route.scope === 'public' ? { kind: 'anonymous' } : await services.apiKeys.authenticate(bearerToken(request))
  if (route.scope === 'root') requireRoot(caller)
  const organizationId = route.scope === 'organization' ? requireOrganization(caller).organization_id : ''
  const hasBody = route.method !== 'GET' && route.method !== 'DELETE'
  return {
    caller,
    organizationId,
    params: parseInput(route.params ?? NO_INPUT, 'params', request.params),
    query: parseInput(route.query ?? NO_INPUT, 'query', gatherMetadataFilters(request.query as Record<string, unknown>)),
    body: hasBody ? parseInput(route.body ?? NO_INPUT, 'body', request.body ?? {}) : undefined,
    services,
    request,
    reply,
  }
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = header.match(/^Bearer\s+(\S+)\s*$/i)
  if (match === null) throw new MiosaError('unauthenticated', 'Authorization header must be "Bearer msk_…"')
  return match[1]
}
