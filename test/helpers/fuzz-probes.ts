// Hostile requests derived from an OpenAPI document: for one write operation, every probe
// it should refuse with a 4xx. Driven by the document alone (paths, parameters with their
// `x-id-prefix`, request body schemas and examples), so a new route gets its probes
// without anyone writing them. Every probe is invalid on purpose: a route that accepts
// one has a finding (or belongs on the fuzz test's short allow-list, with a reason).

export type JsonSchema = Record<string, unknown> & {
  type?: string
  $ref?: string
  anyOf?: JsonSchema[]
  allOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
  maxLength?: number
  minimum?: number
  maximum?: number
  nullable?: boolean
  enum?: unknown[]
  example?: unknown
  'x-id-prefix'?: string
}

export interface Operation {
  method: string
  /** The OpenAPI path, `{param}` segments and all. */
  path: string
  parameters: Array<{ name: string; in: 'path' | 'query'; required?: boolean; schema: JsonSchema; example?: unknown }>
  /** The JSON body's schema and example, when the operation takes JSON. */
  json?: { schema: JsonSchema; example: unknown } | undefined
  /** Media types of a byte-stream body, when the operation takes one. */
  streamTypes?: string[] | undefined
}

export interface Probe {
  /** What the probe tries, for failure messages. */
  name: string
  url: string
  /** Raw request body bytes and their content type (none: no body). */
  body?: string | undefined
  contentType?: string | undefined
}

/** Everything a probe needs from the platform: real ids by prefix (own and another tenant's). */
export interface ProbeIds {
  own: Record<string, string>
  other: Record<string, string>
}

export function operationsOf(doc: { paths: Record<string, Record<string, unknown>>; components?: { schemas?: Record<string, JsonSchema> } }): Operation[] {
  const ops: Operation[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(methods)) {
      if (!['post', 'put', 'patch', 'delete'].includes(method)) continue
      const op = raw as { parameters?: Operation['parameters']; requestBody?: { content: Record<string, { schema: JsonSchema; example?: unknown }> } }
      const content = op.requestBody?.content
      const json = content?.['application/json']
      ops.push({
        method: method.toUpperCase(),
        path,
        parameters: op.parameters ?? [],
        json: json === undefined ? undefined : { schema: resolve(json.schema, doc), example: json.example },
        streamTypes: content !== undefined && json === undefined ? Object.keys(content) : undefined,
      })
    }
  }
  return ops
}

/** Follows `$ref`s and single `allOf`s to the schema they name. */
export function resolve(schema: JsonSchema, doc: { components?: { schemas?: Record<string, JsonSchema> } }): JsonSchema {
  let current = schema
  for (let depth = 0; depth < 10; depth++) {
    if (typeof current.$ref === 'string') current = doc.components?.schemas?.[current.$ref.split('/').pop() as string] ?? {}
    else if (current.allOf?.length === 1) current = current.allOf[0] as JsonSchema
    else break
  }
  return current
}

/** The concrete schemas a value may match: one, or each alternative of an `anyOf` (null left out). */
function alternativesOf(schema: JsonSchema, doc: Parameters<typeof resolve>[1]): JsonSchema[] {
  const s = resolve(schema, doc)
  const alternatives = s.anyOf ?? s.oneOf
  if (alternatives === undefined) return [s]
  return alternatives.map((a) => resolve(a, doc)).filter((a) => a.type !== 'null')
}

/** A value of a type none of the alternatives takes, or undefined when one takes any type. */
function wrongTypeFor(alternatives: JsonSchema[]): unknown {
  const types = alternatives.map((a) => a.type)
  if (types.length === 0 || types.includes(undefined)) return undefined
  const candidates: unknown[] = [12345, 'not-a-value', true, ['x'], { x: 1 }]
  const jsonType = (v: unknown) => (Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v)
  return candidates.find((v) => !types.some((t) => t === jsonType(v) || (t === 'integer' && jsonType(v) === 'number')))
}

const BIG_STRING_CHARS = 100_000
/** Past the API's 1 MiB body limit: a field allowed more than that is refused as a whole body. */
const PAST_BODY_LIMIT = 1024 * 1024 + 1

/** Values no field of this type should take, each with a name. */
function hostileValuesFor(alternatives: JsonSchema[]): Array<[string, unknown]> {
  const values: Array<[string, unknown]> = []
  const wrong = wrongTypeFor(alternatives)
  if (wrong !== undefined) values.push(['a wrong type', wrong])
  // Values that are wrong for one type can be right for another alternative: only the wrong type then.
  const schema = alternatives[0]
  if (alternatives.length !== 1 || schema === undefined) return values
  if (schema.type === 'string' && schema.enum === undefined) {
    values.push(['an oversized string', 'x'.repeat(Math.min(Math.max((schema.maxLength ?? 0) + 1, BIG_STRING_CHARS), PAST_BODY_LIMIT))])
    values.push(['a NUL byte', 'a\u0000b'])
    values.push(['a lone surrogate', 'a\ud800b'])
  }
  if (schema.type === 'string' && schema.enum !== undefined) values.push(['a value outside the enum', '../../etc/passwd'])
  if (schema.type === 'integer' || schema.type === 'number') {
    values.push(['a huge number', 1e308])
    values.push(['a number past 2^53', 2 ** 53 + 2])
    values.push(['a negative number', -1])
    if (schema.type === 'integer') values.push(['a fraction', 1.5])
  }
  if (schema.type === 'object') values.push(['an array for an object', []])
  if (schema.type === 'array') values.push(['an object for an array', {}])
  return values
}

function withQuery(url: string, query: Record<string, string>): string {
  const qs = new URLSearchParams(query).toString()
  return qs === '' ? url : `${url}?${qs}`
}

const PROTO_BODIES: Array<[string, (example: string) => string]> = [
  ['a __proto__ key', (ex) => ex.replace(/^\{/, '{"__proto__":{"isAdmin":true},')],
  ['a constructor.prototype key', (ex) => ex.replace(/^\{/, '{"constructor":{"prototype":{"isAdmin":true}},')],
]

/** Every probe for one operation: body, fields, path ids, query. */
export function probesFor(op: Operation, ids: ProbeIds, doc: Parameters<typeof resolve>[1]): Probe[] {
  const pathParams = op.parameters.filter((p) => p.in === 'path')
  const queryParams = op.parameters.filter((p) => p.in === 'query')
  const fill = (override: Record<string, string> = {}) =>
    op.path.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      if (override[name] !== undefined) return override[name]
      const param = pathParams.find((p) => p.name === name)
      const prefix = param?.schema['x-id-prefix']
      const value = prefix === undefined ? param?.schema.example : ids.own[prefix]
      if (typeof value !== 'string') throw new Error(`${op.method} ${op.path}: no value for {${name}} (id prefix ${prefix}); give the fuzz test one`)
      return encodeURIComponent(value)
    })
  // The example query (required parameters), so that only the probed part is wrong.
  const baseQuery: Record<string, string> = {}
  for (const p of queryParams) if (p.example !== undefined) baseQuery[p.name] = String(p.example)
  const base = withQuery(fill(), baseQuery)
  const example = JSON.stringify(op.json?.example ?? {})
  const validBody = op.streamTypes === undefined ? { body: example, contentType: 'application/json' } : { body: 'x', contentType: op.streamTypes[0] }
  const probes: Probe[] = []
  const withBody = op.method !== 'DELETE'

  // First an unknown query parameter: refused by every route, after the key's scope is checked.
  probes.push({ name: 'an unknown query parameter', url: withQuery(fill(), { ...baseQuery, __proto__x: '1' }), ...(withBody ? validBody : {}) })

  // Path ids: too long, wrong prefix, another tenant's, traversal, NUL, bad percent-encoding.
  for (const param of pathParams) {
    const prefix = param.schema['x-id-prefix']
    const bad: Array<[string, string]> = [
      ['a 10,000-character id', 'a'.repeat(10_000)],
      ['an id with a traversal', encodeURIComponent('../../admin/rotate-master-key')],
      ['an id with a NUL byte', `${prefix ?? 'x'}_%00`],
      ['an id that is not percent-encoding', '%E0%A4%A'],
      ['an id in fullwidth letters', encodeURIComponent(`${prefix ?? 'x'}_ｅｘａｍｐｌｅ`)],
    ]
    if (prefix !== undefined) {
      bad.push(['an id with the wrong prefix', `zzz_${(ids.own[prefix] ?? '').split('_')[1] ?? 'abc'}`])
      const other = ids.other[prefix]
      if (other !== undefined) bad.push(["another tenant's id", other])
    }
    for (const [name, value] of bad) probes.push({ name: `{${param.name}}: ${name}`, url: withQuery(fill({ [param.name]: value }), baseQuery), ...(withBody ? validBody : {}) })
  }

  // Query: hostile values for each known parameter.
  for (const param of queryParams) {
    const schema = alternativesOf(param.schema, doc)[0] ?? {}
    // Past the schema's limit, yet within what the HTTP parser takes (16 KB of request line and headers).
    const oversized = 'x'.repeat(Math.min((schema.maxLength ?? 8_000) + 1, 12_000))
    const values: Array<[string, string]> = [['an oversized value', oversized], ['a NUL byte', 'a\u0000b']]
    if (schema.enum !== undefined) values.push(['a value outside the enum', 'maybe'])
    if (schema['x-id-prefix'] !== undefined && ids.other[schema['x-id-prefix']] !== undefined) {
      values.push(["another tenant's id", ids.other[schema['x-id-prefix']] as string])
    }
    if (schema.pattern !== undefined) values.push(['a value outside the pattern', '../../etc/passwd'])
    for (const [name, value] of values) {
      probes.push({ name: `?${param.name}: ${name}`, url: withQuery(fill(), { ...baseQuery, [param.name]: value }), ...(withBody ? validBody : {}) })
    }
  }

  if (!withBody) return probes
  if (op.streamTypes !== undefined) {
    if (!op.streamTypes.includes('*/*')) probes.push({ name: 'a JSON body where bytes of a named type are due', url: base, body: '{}', contentType: 'application/json' })
    return probes
  }

  // The body as a whole.
  const bodies: Array<[string, string, string]> = [
    ['malformed JSON', example.slice(0, -1), 'application/json'],
    ['null', 'null', 'application/json'],
    ['an array', `[${example}]`, 'application/json'],
    ['a string', JSON.stringify(example), 'application/json'],
    ['a number', '1e999', 'application/json'],
    ['the example as text/plain', example, 'text/plain'],
    ['the example as a form', 'name=x', 'application/x-www-form-urlencoded'],
    ['an unknown field', example === '{}' ? '{"zz_unknown":1}' : example.replace(/^\{/, '{"zz_unknown":1,'), 'application/json'],
    ['an oversized body', JSON.stringify({ pad: 'x'.repeat(PAST_BODY_LIMIT) }), 'application/json'],
    ...PROTO_BODIES.map(([name, make]): [string, string, string] => [name, make(example === '{}' ? '{}' : example).replace(/,\}$/, '}'), 'application/json']),
  ]
  for (const [name, body, contentType] of bodies) probes.push({ name: `body: ${name}`, url: base, body, contentType })

  // Each field of the body with a value it must not take, the rest as in the example.
  const schema = op.json === undefined ? undefined : resolve(op.json.schema, doc)
  const exampleObject = (op.json?.example ?? {}) as Record<string, unknown>
  for (const [field, fieldSchema] of Object.entries(schema?.properties ?? {})) {
    for (const [name, value] of hostileValuesFor(alternativesOf(fieldSchema, doc))) {
      probes.push({ name: `.${field}: ${name}`, url: base, body: JSON.stringify({ ...exampleObject, [field]: value }), contentType: 'application/json' })
    }
  }
  return probes
}
