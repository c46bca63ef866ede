import { describe, expect, it } from 'vitest'
import { FairCreationQueue } from '../../src/core/admission.js'
import { MiosaError } from '../../src/core/errors.js'

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

const tick = () => new Promise((r) => setImmediate(r))

describe('FairCreationQueue', () => {
  it('runs at most `concurrency` creations, and organizations take turns', async () => {
    const queue = new FairCreationQueue({ concurrency: 2, queuePerOrganization: 10 })
    const started: string[] = []
    const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>()
    const create = (org: string, n: number) => {
      const name = `${org}${n}`
      const gate = deferred()
      gates.set(name, gate)
      return queue.enter(org).run(async () => {
        started.push(name)
        await gate.promise
      })
    }
    // One organization's burst first, then another's single creation.
    const runs = [1, 2, 3, 4, 5].map((n) => create('a', n))
    runs.push(create('b', 1))
    await tick()
    expect(started).toEqual(['a1', 'a2'])
    expect(queue.stats()).toEqual({ running: 2, waiting: 4 })
    gates.get('a1')?.resolve()
    await tick()
    gates.get('a2')?.resolve()
    await tick()
    // b's creation went second-in-line, not behind a's whole burst.
    expect(started).toEqual(['a1', 'a2', 'a3', 'b1'])
    for (const gate of gates.values()) gate.resolve()
    await Promise.all(runs)
    expect(started).toHaveLength(6)
    expect(queue.stats()).toEqual({ running: 0, waiting: 0 })
  })

  it('refuses beyond an organization\'s queue with rate_limited and a retry time, and gives places back', async () => {
    const queue = new FairCreationQueue({ concurrency: 1, queuePerOrganization: 2 })
    const first = queue.enter('a')
    const second = queue.enter('a')
    let refusal: unknown
    try {
      queue.enter('a')
    } catch (error) {
      refusal = error
    }
    expect(refusal).toBeInstanceOf(MiosaError)
    expect((refusal as MiosaError).code).toBe('rate_limited')
    expect((refusal as MiosaError).details).toMatchObject({ limit: 'sandbox_creations_queued', queue_per_organization: 2, concurrency: 1 })
    expect((refusal as { details: { retry_after_seconds: number } }).details.retry_after_seconds).toBeGreaterThanOrEqual(1)
    // Another organization has its own queue.
    queue.enter('b').cancel()
    // A cancelled place and a finished creation both free their place.
    second.cancel()
    await first.run(async () => {})
    const again = [queue.enter('a'), queue.enter('a')]
    for (const ticket of again) ticket.cancel()
  })

  it('starts no creation while a resume runs ahead of them', async () => {
    const queue = new FairCreationQueue({ concurrency: 1, queuePerOrganization: 10 })
    const started: string[] = []
    const first = deferred()
    const one = queue.enter('a').run(async () => {
      started.push('a1')
      await first.promise
    })
    const two = queue.enter('a').run(async () => {
      started.push('a2')
    })
    const resume = deferred()
    const ahead = queue.ahead(() => resume.promise)
    first.resolve()
    await one
    await tick()
    expect(started).toEqual(['a1'])
    resume.resolve()
    await ahead
    await two
    expect(started).toEqual(['a1', 'a2'])
  })
})
