import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Bad input gets a 4xx that names the problem, and nothing is written.

let t: TestPlatform
let org: { id: string; key: string }
let workspaceId: string

async function counts(): Promise<string> {
  const [ws, prj, keys, orgs] = await Promise.all([
    t.call('GET', '/api/v1/workspaces?limit=200', { key: org.key }),
    t.call('GET', '/api/v1/projects?limit=200', { key: org.key }),
    t.call('GET', '/api/v1/api-keys?limit=200', { key: org.key }),
    t.call('GET', '/api/v1/organizations?limit=200', { key: t.rootKey }),
  ])
  return JSON.stringify([ws.json.data.length, prj.json.data.length, keys.json.data.length, orgs.json.data.length, ws.json.data])
}

beforeAll(async () => {
  t = await startTestPlatform()
  org = await t.newOrganization()
  workspaceId = (await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Existing' } })).json.id
})

afterAll(async () => {
  await t?.close()
})

interface BadCase {
  name: string
  method?: string
  path: string
  key?: 'org' | 'root'
  body?: unknown
  rawBody?: string
  headers?: Record<string, string>
  status: number
  code: string
  /** Text the message must contain: the field or limit at fault. */
  names: string[]
}

const cases: BadCase[] = [
  { name: 'malformed JSON', path: '/api/v1/workspaces', rawBody: '{"name": "x",', status: 400, code: 'invalid', names: ['body', 'malformed JSON'] },
  { name: 'JSON that is not an object', path: '/api/v1/workspaces', rawBody: '[1,2]', status: 400, code: 'invalid', names: ['body'] },
  { name: 'an unknown field', path: '/api/v1/workspaces', body: { name: 'x', nmae: 'typo' }, status: 400, code: 'invalid', names: ['nmae', 'unknown field'] },
  { name: 'a missing required field', path: '/api/v1/workspaces', body: { slug: 'abc' }, status: 400, code: 'invalid', names: ['name', 'required'] },
  { name: 'a wrong type', path: '/api/v1/workspaces', body: { name: 42 }, status: 400, code: 'invalid', names: ['name', 'expected string'] },
  { name: 'a wrong type nested in metadata', path: '/api/v1/workspaces', body: { name: 'x', metadata: { plan: 3 } }, status: 400, code: 'invalid', names: ['metadata.plan'] },
  { name: 'metadata that is not a map', path: '/api/v1/workspaces', body: { name: 'x', metadata: ['a'] }, status: 400, code: 'invalid', names: ['metadata'] },
  { name: 'too many metadata keys', path: '/api/v1/workspaces', body: { name: 'x', metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }, status: 400, code: 'invalid', names: ['metadata', '50'] },
  { name: 'an over-long name', path: '/api/v1/workspaces', body: { name: 'x'.repeat(101) }, status: 400, code: 'invalid', names: ['name'] },
  { name: 'a slug that is not a DNS label', path: '/api/v1/workspaces', body: { name: 'x', slug: 'Bad_Slug' }, status: 400, code: 'invalid', names: ['slug'] },
  { name: 'a slug with the reserved double hyphen', path: '/api/v1/workspaces', body: { name: 'x', slug: 'a--b' }, status: 400, code: 'invalid', names: ['slug'] },
  { name: 'a project with no workspace_id', path: '/api/v1/projects', body: { name: 'p' }, status: 400, code: 'invalid', names: ['workspace_id', 'required'] },
  { name: 'a prototype-poisoning body', path: '/api/v1/workspaces', rawBody: '{"name":"x","__proto__":{"admin":true}}', status: 400, code: 'invalid', names: ['body'] },
  { name: 'an unsupported media type', path: '/api/v1/workspaces', rawBody: '<name>x</name>', headers: { 'content-type': 'application/xml' }, status: 415, code: 'unsupported_media_type', names: ['application/json'] },
  { name: 'an oversized body', path: '/api/v1/workspaces', body: { name: 'x', metadata: { blob: 'y'.repeat(2 * 1024 * 1024) } }, status: 413, code: 'payload_too_large', names: ['body', '1048576'] },
  { name: 'an unknown query parameter', method: 'GET', path: '/api/v1/workspaces?limt=5', status: 400, code: 'invalid', names: ['limt', 'unknown field'] },
  { name: 'a non-numeric limit', method: 'GET', path: '/api/v1/workspaces?limit=ten', status: 400, code: 'invalid', names: ['limit'] },
  { name: 'a limit above the maximum', method: 'GET', path: '/api/v1/workspaces?limit=201', status: 400, code: 'invalid', names: ['limit', '200'] },
  { name: 'a forged cursor', method: 'GET', path: '/api/v1/workspaces?cursor=not-a-cursor', status: 400, code: 'invalid', names: ['cursor'] },
  { name: 'a bad organization body (root)', path: '/api/v1/organizations', key: 'root', body: { name: 'o', external_user_id: '' }, status: 400, code: 'invalid', names: ['external_user_id'] },
  { name: 'a bad api-key body', path: '/api/v1/api-keys', body: { name: 'k', scopes: ['all'] }, status: 400, code: 'invalid', names: ['scopes', 'unknown field'] },
  { name: 'a bad update', method: 'PATCH', path: '/api/v1/workspaces/WS', body: { slug: 'new-slug' }, status: 400, code: 'invalid', names: ['slug', 'unknown field'] },
]

describe('bad input', () => {
  for (const c of cases) {
    it(`${c.name} → ${c.status} naming the problem, nothing written`, async () => {
      const before = await counts()
      const res = await t.call(c.method ?? 'POST', c.path.replace('WS', workspaceId), {
        key: c.key === 'root' ? t.rootKey : org.key,
        body: c.body,
        rawBody: c.rawBody,
        headers: c.headers,
      })
      expect(res.status, res.text).toBe(c.status)
      expect(res.json.error.code).toBe(c.code)
      for (const text of c.names) expect(res.json.error.message).toContain(text)
      expect(res.json.error.request_id).toMatch(/^req_/)
      expect(await counts()).toBe(before)
    })
  }

  it('lists every bad field at once, each with its path', async () => {
    const res = await t.call('POST', '/api/v1/projects', { key: org.key, body: { name: '', metadata: { a: 1 }, extra: true } })
    expect(res.status).toBe(400)
    const fields = res.json.error.details.issues.map((i: { field: string }) => i.field).sort()
    expect(fields).toEqual(['extra', 'metadata.a', 'name', 'workspace_id'])
  })

  it('an empty JSON body on a create is a missing field, not a parse error', async () => {
    const res = await t.call('POST', '/api/v1/workspaces', { key: org.key, rawBody: '' })
    expect(res.status).toBe(400)
    expect(res.json.error.message).toContain('name: required')
  })

  it('a duplicate explicit slug is a 409 naming the slug, and the first stays', async () => {
    const first = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'A', slug: 'taken-slug' } })
    expect(first.status).toBe(201)
    const before = await counts()
    const second = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'B', slug: 'taken-slug' } })
    expect(second.status).toBe(409)
    expect(second.json.error.message).toContain('taken-slug')
    expect(second.json.error.details.field).toBe('slug')
    expect(await counts()).toBe(before)
  })

  it('a name whose slug is taken gets a suffixed slug instead of an error', async () => {
    const a = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Same Name' } })
    const b = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: { name: 'Same Name' } })
    expect(a.json.slug).toBe('same-name')
    expect(b.json.slug).toMatch(/^same-name-[a-z2-7]{4}$/)
  })

  it('unknown routes are a JSON 404 naming the route', async () => {
    const res = await t.call('GET', '/api/v1/nothing-here', { key: org.key })
    expect(res.status).toBe(404)
    expect(res.json.error.message).toContain('/api/v1/nothing-here')
  })
})
