import { z } from 'zod'
import type { AnyRoute } from './route.js'

// The OpenAPI 3.0 document, generated from the same route list and zod schemas that
// validate requests, so the two cannot drift apart.

type JsonSchema = Record<string, unknown>

const COMPONENTS = '#/components/schemas/'

export function buildOpenApiDocument(routes: readonly AnyRoute[], version: string): JsonSchema {
  const components: Record<string, JsonSchema> = {}
  const toSchema = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const generated = z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' })
    // Named schemas (.meta({ id })) come out as local definitions; hoist them into components.
    const json = JSON.parse(JSON.stringify(generated).replaceAll('"#/definitions/', `"${COMPONENTS}`)) as JsonSchema & {
      definitions?: Record<string, JsonSchema>
    }
    const { definitions, ...rest } = json
    for (const [id, def] of Object.entries(definitions ?? {})) components[id] ??= def
    return rest
  }

  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = `/api/v1${route.path.replace(/:([a-z_]+)/g, '{$1}')}`
    const parameters = [
      ...objectProperties(route.params, toSchema).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
      ...objectProperties(route.query, toSchema).map(([name, schema, required]) =>
        name === 'metadata'
          ? { name, in: 'query', style: 'deepObject', explode: true, schema, description: 'metadata[key]=value filters' }
          : { name, in: 'query', required, schema, ...(route.exampleQuery?.[name] === undefined ? {} : { example: route.exampleQuery[name] }) },
      ),
    ]
    const status = String(route.status ?? 200)
    ;(paths[path] ??= {})[route.method.toLowerCase()] = {
      summary: route.summary,
      tags: [route.tag],
      operationId: operationId(route),
      ...(route.socket === undefined ? {} : { description: route.socket.description }),
      ...(route.scope === 'public' ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...requestBodyOf(route, toSchema),
      responses: {
        ...(route.socket === undefined
          ? { [status]: { description: 'Success', content: responseContent(route, toSchema) } }
          : { '101': { description: 'Switching Protocols: the connection is now a WebSocket' } }),
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: `${COMPONENTS}Error` } } } },
      },
    }
  }

  return {
    openapi: '3.0.3',
    info: {
      title: 'miosa API',
      version,
      description:
        'Every path is also served under /v1. Authenticate with "Authorization: Bearer msk_…". Every error, the server\'s own included, is {"error":{"code","message","details","request_id"}}.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key: msk_…' } },
      schemas: { ...components, Error: ERROR_SCHEMA },
    },
  }
}

type ToSchema = (s: z.ZodType, io: 'input' | 'output') => JsonSchema

const BINARY = { type: 'string', format: 'binary' }

function requestBodyOf(route: AnyRoute, toSchema: ToSchema): JsonSchema {
  if (route.bodyStream !== undefined) {
    const types = route.bodyStream.contentTypes === '*' ? ['application/octet-stream', '*/*'] : route.bodyStream.contentTypes
    return {
      requestBody: {
        required: true,
        description: `${route.bodyStream.description} (at most ${route.bodyStream.limitBytes} bytes)`,
        content: Object.fromEntries(types.map((type) => [type, { schema: BINARY }])),
      },
    }
  }
  if (route.body === undefined) return {}
  return {
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: toSchema(route.body, 'input'),
          ...(route.example === undefined ? {} : { example: route.example }),
        },
      },
    },
  }
}

function responseContent(route: AnyRoute, toSchema: ToSchema): JsonSchema {
  const content: JsonSchema = {}
  if (route.response !== undefined) content['application/json'] = { schema: toSchema(route.response, 'output') }
  // Streams: the schema describes one event or line where there is one; otherwise the bytes.
  for (const media of route.produces ?? []) {
    const schema = media.schema === undefined ? BINARY : toSchema(media.schema, 'output')
    content[media.contentType] = { schema: '$ref' in schema ? { allOf: [schema], description: media.description } : { ...schema, description: media.description } }
  }
  return content
}

function objectProperties(
  schema: z.ZodType | undefined,
  toSchema: ToSchema,
): Array<[string, JsonSchema, boolean]> {
  if (schema === undefined) return []
  const json = toSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] }
  return Object.entries(json.properties ?? {}).map(([name, prop]) => [name, prop, json.required?.includes(name) ?? false])
}

function operationId(route: AnyRoute): string {
  const words = route.path.split('/').filter((s) => s !== '' && !s.startsWith(':'))
  const camel = words.map((w) => w.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()))
  return [route.method.toLowerCase(), ...camel.map((w) => w[0]?.toUpperCase() + w.slice(1))].join('') + (route.path.endsWith(':id') ? 'ById' : '')
}

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'Stable machine-readable code: invalid, unauthenticated, forbidden, not_found, conflict, …' },
        message: { type: 'string', description: 'What went wrong, naming the field where one is at fault' },
        details: { nullable: true, description: 'Structured detail, e.g. the list of invalid fields' },
        request_id: { type: 'string' },
      },
    },
  },
}
