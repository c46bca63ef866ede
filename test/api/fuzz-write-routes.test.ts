import { connect } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../../src/core/errors.js'
import { operationsOf, probesFor } from '../helpers/fuzz-probes.js'
import type { Operation, Probe, ProbeIds } from '../helpers/fuzz-probes.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// The standing fuzz test: every write route in the OpenAPI document the API serves, over
// the real HTTP server, with malformed, oversized, wrong-typed and hostile input (see
// fuzz-probes.ts). Each answer is a 4xx in the standard error shape, and nothing changes:
// the row count of every table, the tenant's listable resources and another tenant's.
// A new route is covered as soon as it is in the document.

/** Operations whose probes cannot all be refused, each with the reason (keep this short). */
const ALLOWED: Record<string, string> = {}

let t: TestPlatform
let tenant: { id: string; key: string }
let other: { id: string; key: string }
const ids: ProbeIds = { own: {}, other: {} }
let doc: Parameters<typeof operationsOf>[0]
let db: Database.Database

/** Every GET of the document with no path parameter that answers JSON: what a tenant can list. */
function listPaths(): string[] {
  return Object.entries(doc.paths).flatMap(([path, methods]) => {
    const get = methods.get as { responses?: Record<string, { content?: Record<string, unknown> }>; parameters?: Array<{ required?: boolean }> } | undefined
    if (get === undefined || path.includes('{') || path.endsWith('openapi.json')) return []
    const content = Object.keys(get.responses?.['200']?.content ?? {})
    if (content.length !== 1 || content[0] !== 'application/json') return []
    if ((get.parameters ?? []).some((p) => p.required === true)) return []
    return [path]
  })
}

/** Every row of every table of the platform's database (a few dozen here), but when keys were last used. */
function rows(): string {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>
  const all = tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}"`).all()])
  return JSON.stringify(all, (key, value: unknown) => (key === 'last_used_at' ? undefined : value))
}

async function state(): Promise<string> {
  const counts = rows()
  const lists: Record<string, unknown> = {}
  for (const who of [tenant, other]) {
    for (const path of listPaths()) {
      const res = await fetch(`${t.apiUrl}${path}`, { headers: { authorization: `Bearer ${who.key}` } })
      lists[`${who.id} ${path}`] = res.status === 200 ? await res.json() : res.status
    }
  }
  const orgs = await fetch(`${t.apiUrl}/api/v1/organizations?limit=200`, { headers: { authorization: `Bearer ${t.rootKey}` } })
  lists.organizations = await orgs.json()
  // Keys note when they were last used, tokens when they expire: everything else must stay as it was.
  return JSON.stringify({ counts, lists }).replace(/"(last_used_at|expires_at)":"[^"]*"/g, '')
}

/** Operations the tenant's key is refused on (403 before any validation): probed with the root key instead. */
const rootOnly = new Set<Operation>()

async function send(op: Operation, probe: Probe): Promise<{ status: number; type: string; text: string; requestId: string | null }> {
  const answer = await sendAs(rootOnly.has(op) ? t.rootKey : tenant.key, op, probe)
  if (answer.status !== 403 || rootOnly.has(op)) return answer
  rootOnly.add(op)
  return sendAs(t.rootKey, op, probe)
}

async function sendAs(key: string, op: Operation, probe: Probe): Promise<{ status: number; type: string; text: string; requestId: string | null }> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` }
  if (probe.contentType !== undefined) headers['content-type'] = probe.contentType
  const res = await fetch(`${t.apiUrl}${probe.url}`, { method: op.method, headers, body: probe.body })
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text(), requestId: res.headers.get('x-request-id') }
}

/** The one error shape: {"error":{"code","message","details","request_id"}} and nothing else. */
function expectStandardError(res: { status: number; type: string; text: string; requestId: string | null }, where: string): void {
  expect(res.status, where).toBeGreaterThanOrEqual(400)
  expect(res.status, where).toBeLessThan(500)
  expect(res.type, where).toMatch(/^application\/json/)
  const body = JSON.parse(res.text) as { error: Record<string, unknown> }
  expect(Object.keys(body), where).toEqual(['error'])
  expect(Object.keys(body.error).sort(), where).toEqual(['code', 'details', 'message', 'request_id'])
  expect(ERROR_CODES as readonly unknown[], where).toContain(body.error.code)
  expect(typeof body.error.message === 'string' && body.error.message.length > 0, where).toBe(true)
  if (res.requestId !== null) expect(body.error.request_id, where).toBe(res.requestId)
}

beforeAll(async () => {
  t = await startTestPlatform({ reconcileIntervalMs: 3_600_000 })
  db = new Database(join(t.dataDir, 'miosa.db'), { readonly: true, fileMustExist: true })
  doc = (await (await fetch(`${t.apiUrl}/api/v1/openapi.json`)).json()) as typeof doc
  for (const [who, bag] of [
    ['Fuzz Tenant', ids.own],
    ['Other Tenant', ids.other],
  ] as const) {
    const org = await t.newOrganization(who)
    if (bag === ids.own) tenant = org
    else other = org
    const call = (method: string, path: string, body?: unknown) => t.call(method, path, { key: org.key, body }).then((r) => r.json)
    bag.org = org.id
    bag.ws = (await call('POST', '/api/v1/workspaces', { name: `${who} Workspace` })).id
    bag.prj = (await call('POST', '/api/v1/projects', { workspace_id: bag.ws, name: `${who} Project` })).id
    bag.key = (await call('POST', '/api/v1/api-keys', { name: 'second' })).id
    bag.dep = (await call('POST', '/api/v1/deployments', { name: `${who} App`, workspace_id: bag.ws })).id
    // A sandbox record with no container behind it: a probe that got past validation would show (5xx or a change).
    bag.sbx = (await insertSandboxRecord(t.platform.store, { organization_id: org.id, workspace_id: bag.ws as string })).id
  }
  // Ids of kinds neither tenant has: well-formed, unknown.
  for (const prefix of ['snap', 'proc', 'tok', 'ver']) ids.own[prefix] = `${prefix}_fuzzfuzzfuzzfuzzfuzz`
})

afterAll(async () => {
  db?.close()
  await t?.close()
})

describe('every write route refuses hostile input with a 4xx in the standard shape, and changes nothing', () => {
  it('finds the write routes in the OpenAPI document the API serves', () => {
    const ops = operationsOf(doc)
    expect(ops.length).toBeGreaterThanOrEqual(50)
    for (const op of ops) expect(() => probesFor(op, ids, doc), `${op.method} ${op.path}`).not.toThrow()
  })

  it('walks every write route', { timeout: 120_000 }, async () => {
    const before = await state()
    const findings: string[] = []
    let sent = 0
    const started = Date.now()
    for (const op of operationsOf(doc)) {
      const allowed = ALLOWED[`${op.method} ${op.path}`]
      const rowsBefore = rows()
      for (const probe of probesFor(op, ids, doc)) {
        // The root key manages every organization: another one's id is its to name.
        if (rootOnly.has(op) && probe.name.endsWith("another tenant's id")) continue
        const res = await send(op, probe)
        sent++
        const where = `${op.method} ${op.path} with ${probe.name} → ${res.status} ${res.text.slice(0, 200)}`
        if (res.status < 400 || res.status >= 500) {
          if (allowed === undefined) findings.push(where)
          continue
        }
        expectStandardError(res, where)
      }
      if (rows() !== rowsBefore) findings.push(`${op.method} ${op.path}: its probes were refused, but the database changed`)
    }
    expect(findings).toEqual([])
    expect(await state()).toBe(before)
    console.log(`fuzz: ${sent} probes over ${operationsOf(doc).length} write routes in ${Date.now() - started} ms`)
  })
})

describe('errors from before any route runs are in the standard shape too', () => {
  const auth = () => ({ authorization: `Bearer ${tenant.key}` })

  it('a 100 KB query and 100 KB of headers are 431; an unknown route 404; bad percent-encoding 400', async () => {
    const cases: Array<[string, RequestInit & { url: string }, number]> = [
      ['a 100 KB query', { url: `/api/v1/workspaces?q=${'a'.repeat(100_000)}`, headers: auth() }, 431],
      ['100 KB of headers', { url: '/api/v1/workspaces', headers: { ...auth(), 'x-big': 'a'.repeat(100_000) } }, 431],
      ['an unknown route', { url: '/api/v1/no-such-route', method: 'POST', headers: auth() }, 404],
      ['a method the route does not have', { url: '/api/v1/workspaces', method: 'PUT', headers: auth() }, 404],
      ['bad percent-encoding', { url: '/api/v1/workspaces/%E0%A4%A', headers: auth() }, 400],
    ]
    for (const [name, init, status] of cases) {
      const res = await fetch(`${t.apiUrl}${init.url}`, init)
      const answer = { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text(), requestId: res.headers.get('x-request-id') }
      expect(answer.status, name).toBe(status)
      expectStandardError(answer, `${name} → ${answer.text.slice(0, 200)}`)
    }
  })

  it('bytes that are not HTTP get a 400 in the standard shape before the connection closes', async () => {
    const { port } = new URL(t.apiUrl)
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'))
      let got = ''
      socket.on('data', (chunk) => (got += chunk.toString()))
      socket.on('end', () => resolve(got))
      socket.on('error', reject)
    })
    const [head, body] = text.split('\r\n\r\n') as [string, string]
    expect(head).toMatch(/^HTTP\/1\.1 400 /)
    expect(JSON.parse(body).error).toMatchObject({ code: 'invalid', message: 'request: not valid HTTP/1.1' })
  })
})

describe("the edge's own refusals are its page, or its JSON error when asked for JSON", () => {
  it('100 KB of headers: 431 as the neutral page, or as JSON', async () => {
    const page = await fetch(t.edgeUrl, { headers: { 'x-big': 'a'.repeat(100_000) } })
    expect(page.status).toBe(431)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await page.text()).toContain('too large')
    const json = await fetch(t.edgeUrl, { headers: { accept: 'application/json', 'x-big': 'a'.repeat(100_000) } })
    expect(json.status).toBe(431)
    expect(await json.json()).toEqual({ error: { code: 'invalid', message: expect.stringContaining('too large') } })
  })
})
