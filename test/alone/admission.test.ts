import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestPlatform } from '../helpers/platform.js'
import type { TestPlatform } from '../helpers/platform.js'

// Runs alone (scripts/test runs test/alone after the rest): its bound is about the load it
// makes itself, not about other test files beside it.
//
// Admission control against a real Docker Engine: while one organization fires 100
// sandbox creations at once, another organization's resume (a container start and its
// agent's boot) answers within 2 s. Creations run as many at a time as the platform's
// default (half the CPUs) and each organization may queue 20: the rest of the burst is
// refused with 429 and Retry-After, so the test stays bounded in time (~20 containers)
// and leaves nothing behind (close() removes them).

const BURST = 100
const QUEUE = 20

let t: TestPlatform
let burster: { id: string; key: string }
let other: { id: string; key: string }

beforeAll(async () => {
  t = await startTestPlatform({ sandboxCreateQueue: QUEUE })
  burster = await t.newOrganization('Burst Org')
  other = await t.newOrganization('Quiet Org')
}, 60_000)

afterAll(async () => {
  await t?.close()
}, 120_000)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function api(key: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${t.apiUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
}

async function states(key: string): Promise<Record<string, number>> {
  const res = await api(key, 'GET', '/sandboxes?limit=200')
  const counts: Record<string, number> = {}
  for (const s of ((await res.json()) as { data: { state: string }[] }).data) counts[s.state] = (counts[s.state] ?? 0) + 1
  return counts
}

describe('admission control', () => {
  it('answers another organization\'s resume within 2 s during a burst of 100 creations, and refuses the burst beyond its queue with 429', async () => {
    const created = await api(other.key, 'POST', '/sandboxes?wait=true', { template: 'node', name: 'quiet', persistent: true })
    const sandbox = (await created.json()) as { id: string; state: string }
    expect(sandbox.state).toBe('running')
    expect((await api(other.key, 'POST', `/sandboxes/${sandbox.id}/stop`)).status).toBe(200)
    // The same resume with nothing else running: what this machine gives right now, for the log.
    const quietStarted = performance.now()
    expect((await api(other.key, 'POST', `/sandboxes/${sandbox.id}/resume`)).status).toBe(200)
    const quietMs = performance.now() - quietStarted
    expect((await api(other.key, 'POST', `/sandboxes/${sandbox.id}/stop`)).status).toBe(200)

    const concurrency = t.platform.config.sandboxCreateConcurrency
    const answers = await Promise.all(
      Array.from({ length: BURST }, (_, i) => api(burster.key, 'POST', '/sandboxes', { template: 'node', name: `burst-${i}` })),
    )
    const accepted = answers.filter((r) => r.status === 201)
    const refused = answers.filter((r) => r.status === 429)
    expect(accepted.length + refused.length).toBe(BURST)
    // Between the queue alone and the queue plus those already running when the rest arrived.
    expect(accepted.length).toBeGreaterThanOrEqual(QUEUE)
    expect(accepted.length).toBeLessThanOrEqual(QUEUE + concurrency)
    const refusal = refused[0] as Response
    expect(Number(refusal.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    const error = ((await refusal.json()) as { error: { code: string; details: Record<string, unknown> } }).error
    expect(error.code).toBe('rate_limited')
    expect(error.details).toMatchObject({ limit: 'sandbox_creations_queued', queue_per_organization: QUEUE, concurrency })

    // The burst is in flight: most of it still waiting for its turn.
    const before = await states(burster.key)
    expect(before.creating ?? 0).toBeGreaterThan(QUEUE / 2)

    const started = performance.now()
    const resumed = await api(other.key, 'POST', `/sandboxes/${sandbox.id}/resume`)
    const resumeMs = performance.now() - started
    expect(resumed.status).toBe(200)
    expect(((await resumed.json()) as { state: string }).state).toBe('running')
    const execStarted = performance.now()
    const exec = await api(other.key, 'POST', `/sandboxes/${sandbox.id}/exec`, { cmd: 'echo awake' })
    const execMs = performance.now() - execStarted
    expect(((await exec.json()) as { stdout: string }).stdout).toBe('awake\n')
    const during = await states(burster.key)
    console.log(`resume ${resumeMs.toFixed(0)} ms (${quietMs.toFixed(0)} ms with nothing else running), exec ${execMs.toFixed(0)} ms, with ${during.creating ?? 0} of the burst's ${accepted.length} sandboxes still creating`)
    expect(during.creating ?? 0).toBeGreaterThan(0)
    expect(resumeMs).toBeLessThan(2000)
    expect(execMs).toBeLessThan(2000)

    // The accepted burst completes (nothing is left creating when the platform closes).
    const deadline = Date.now() + 70_000
    let now = during
    while ((now.creating ?? 0) > 0 && Date.now() < deadline) {
      await sleep(500)
      now = await states(burster.key)
    }
    expect(now).toEqual({ running: accepted.length })
  }, 100_000)
})
