import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Rate limits per API key, over real HTTP: a token bucket of 4 refilled at 1 per second.

let t: TestPlatform
let a: { id: string; key: string }
let b: { id: string; key: string }

beforeAll(async () => {
  t = await startTestPlatform({ rateLimitRps: 1, rateLimitBurst: 4 })
  // The root key is limited too: these four calls are its whole burst.
  a = await t.newOrganization('Rate A')
  b = await t.newOrganization('Rate B')
})

afterAll(async () => {
  await t?.close()
})

const get = (key: string) => fetch(`${t.apiUrl}/api/v1/workspaces`, { headers: { authorization: `Bearer ${key}` } })

describe('rate limits per API key', () => {
  it('answers 429 rate_limited with Retry-After once a key is over its limit, serves other keys, and serves it again after the wait', async () => {
    for (let i = 0; i < 4; i++) expect((await get(a.key)).status).toBe(200)
    const refused = await get(a.key)
    expect(refused.status).toBe(429)
    const retryAfter = refused.headers.get('retry-after')
    expect(retryAfter).toMatch(/^\d+$/)
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    const body = (await refused.json()) as { error: { code: string; message: string; details: Record<string, unknown>; request_id: string } }
    expect(body.error.code).toBe('rate_limited')
    expect(body.error.message).toContain('1 requests per second (4 at once)')
    expect(body.error.details).toMatchObject({ limit: 'api_key_requests', requests_per_second: 1, burst: 4, retry_after_seconds: Number(retryAfter) })
    expect(body.error.request_id).toMatch(/^req_/)
    // Another organization's key has its own bucket.
    expect((await get(b.key)).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, Number(retryAfter) * 1000))
    expect((await get(a.key)).status).toBe(200)
  })

  it('counts requests without a valid key by the key sent, and leaves public routes alone', async () => {
    const bogus = 'msk_notarealkey00000000000000000'
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await get(bogus)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 429])
    for (let i = 0; i < 5; i++) expect((await fetch(`${t.apiUrl}/healthz`)).status).toBe(200)
  })
})
