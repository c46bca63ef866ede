import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryRateLimiter } from '../../src/core/rate-limiter.js'
import { TestBackend, call, startEdge, startUpstream } from './fixtures.js'
import type { TestEdge, Upstream } from './fixtures.js'

// The edge's limit per host: a flooded preview answers 429 while another host is served.

let upstream: Upstream
let edge: TestEdge
let host: (label: string) => string

beforeAll(async () => {
  upstream = await startUpstream()
  const backend = new TestBackend()
  const target = { host: '127.0.0.1', port: upstream.port }
  backend.add({ slug: 'flooded', public: true, target })
  backend.add({ slug: 'quiet', public: true, target })
  edge = await startEdge(backend, { hostLimiter: new MemoryRateLimiter({ perSecond: 0.5, burst: 5 }) })
  host = (label) => `3000-${label}.sandbox.localhost:${edge.port}`
})

afterAll(async () => {
  await edge?.close()
  await upstream?.close()
})

describe('rate limits per host at the edge', () => {
  it('answers a flooded host 429 with Retry-After while another host is served, then serves it again', async () => {
    const started = performance.now()
    const flood = await Promise.all(Array.from({ length: 40 }, () => call(edge.port, host('flooded'), '/')))
    // The burst, plus a token per 2 s the flood took (a loaded machine is slow).
    const refilled = Math.floor((performance.now() - started) / 2000)
    const statuses = flood.map((r) => r.status)
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(5)
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5 + refilled)
    expect(statuses.filter((s) => s === 429).length + statuses.filter((s) => s === 200).length).toBe(40)
    const refused = flood.find((r) => r.status === 429)
    expect(refused?.headers['retry-after']).toMatch(/^[12]$/)
    expect(refused?.headers['content-type']).toContain('text/html')
    expect(refused?.text).toContain('Too many requests')
    // The edge's JSON shape for clients asking for JSON.
    const asJson = await call(edge.port, host('flooded'), '/', { headers: { accept: 'application/json' } })
    expect(asJson.status).toBe(429)
    expect(JSON.parse(asJson.text)).toEqual({ error: { code: 'rate_limited', message: expect.stringMatching(/Try again in [12] s/) } })

    for (let i = 0; i < 5; i++) expect((await call(edge.port, host('quiet'), '/')).status).toBe(200)

    await new Promise((resolve) => setTimeout(resolve, Number(asJson.headers['retry-after']) * 1000))
    expect((await call(edge.port, host('flooded'), '/')).status).toBe(200)
  })
})
