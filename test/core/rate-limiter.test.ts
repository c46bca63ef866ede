import { describe, expect, it } from 'vitest'
import { MemoryRateLimiter } from '../../src/core/rate-limiter.js'

describe('MemoryRateLimiter', () => {
  it('allows a burst, refuses the next with a whole-second wait, and refills at its rate', () => {
    let now = 0
    const limiter = new MemoryRateLimiter({ perSecond: 2, burst: 3 }, { now: () => now })
    for (let i = 0; i < 3; i++) expect(limiter.take('k')).toEqual({ allowed: true })
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterSeconds: 1 })
    // Another key has its own bucket.
    expect(limiter.take('other')).toEqual({ allowed: true })
    now = 499
    expect(limiter.take('k').allowed).toBe(false)
    now = 500
    expect(limiter.take('k')).toEqual({ allowed: true })
    expect(limiter.take('k').allowed).toBe(false)
    now = 10_000 // never more than the burst, however long the quiet
    for (let i = 0; i < 3; i++) expect(limiter.take('k').allowed).toBe(true)
    expect(limiter.take('k').allowed).toBe(false)
  })

  it('says how long a slow bucket needs, never less than a second', () => {
    let now = 0
    const limiter = new MemoryRateLimiter({ perSecond: 0.2, burst: 1 }, { now: () => now })
    expect(limiter.take('k').allowed).toBe(true)
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterSeconds: 5 })
    now = 4000
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterSeconds: 1 })
  })

  it('keeps at most maxBuckets, dropping the idlest first', () => {
    let now = 0
    const limiter = new MemoryRateLimiter({ perSecond: 1, burst: 1 }, { maxBuckets: 3, now: () => now })
    limiter.take('busy')
    for (let i = 0; i < 100; i++) {
      now += 1
      limiter.take(`flood-${i}`)
      limiter.take('busy') // used all along: never the one evicted, so it stays empty
    }
    expect(limiter.size).toBe(3)
    expect(limiter.take('busy').allowed).toBe(false)
  })
})
