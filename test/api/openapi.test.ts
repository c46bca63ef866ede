import { Validator } from '@seriousme/openapi-schema-validator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { routes } from '../../src/api/routes/index.js'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

let t: TestPlatform
let doc: any

beforeAll(async () => {
  t = await startTestPlatform()
  const res = await t.call('GET', '/api/v1/openapi.json')
  expect(res.status).toBe(200)
  doc = res.json
})

afterAll(async () => {
  await t?.close()
})

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.0 document, served without a key at both prefixes', async () => {
    const result = await new Validator().validate(doc)
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([])
    expect(result.valid).toBe(true)
    expect((await t.call('GET', '/v1/openapi.json')).json).toEqual(doc)
  })

  it('documents every registered route with its method', () => {
    for (const route of routes) {
      const path = `/api/v1${route.path.replace(/:([a-z_]+)/g, '{$1}')}`
      expect(doc.paths[path]?.[route.method.toLowerCase()], `${route.method} ${path}`).toBeDefined()
    }
  })

  it('describes request bodies from the same schemas that validate them', async () => {
    const op = doc.paths['/api/v1/workspaces'].post
    const schema = op.requestBody.content['application/json'].schema
    expect(schema.required).toEqual(['name'])
    expect(schema.additionalProperties).toBe(false)
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['name', 'slug', 'external_user_id', 'external_project_id', 'external_workspace_id', 'metadata']),
    )
    // The documented example is accepted by the live validator.
    const org = await t.newOrganization()
    const res = await t.call('POST', '/api/v1/workspaces', { key: org.key, body: op.requestBody.content['application/json'].example })
    expect(res.status).toBe(201)
  })

  it('every $ref resolves to a component schema', () => {
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? []
    expect(refs.length).toBeGreaterThan(0)
    for (const ref of refs) {
      const name = ref.slice('"$ref":"#/components/schemas/'.length, -1)
      expect(doc.components.schemas[name], ref).toBeDefined()
    }
  })
})
