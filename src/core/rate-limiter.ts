// Token buckets by key: `burst` requests at once, refilled at `perSecond`. The interface is
// what the API and the edge use, so a shared implementation (in the store) can replace the
// in-memory one when several processes serve one platform.

export interface RateLimit {
  /** Tokens added per second: the sustained rate. */
  perSecond: number
  /** The bucket's capacity: how many requests may come at once after a quiet spell. */
  burst: number
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number }

export interface RateLimiter {
  readonly limit: RateLimit
  /** Takes one token from the key's bucket; when it is empty, says how long until one is back. */
  take(key: string): RateDecision
}

/** Buckets kept at most (one per key): the least recently used goes first. */
const DEFAULT_MAX_BUCKETS = 10_000

interface Bucket {
  tokens: number
  /** When `tokens` was last brought up to date (ms, monotonic). */
  at: number
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    readonly limit: RateLimit,
    private readonly opts: { maxBuckets?: number; now?: () => number } = {},
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new RangeError('a rate limit needs perSecond > 0 and burst ≥ 1')
  }

  take(key: string): RateDecision {
    const now = this.opts.now?.() ?? performance.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = { tokens: this.limit.burst, at: now }
      this.evictIfFull()
    } else {
      // Map order is use order: the first entries are the idlest, evicted first.
      this.buckets.delete(key)
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond)
      bucket.at = now
    }
    this.buckets.set(key, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return { allowed: true }
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.limit.perSecond)) }
  }

  /** Buckets held now (for tests). */
  get size(): number {
    return this.buckets.size
  }

  /**
   * The least recently used bucket goes: with thousands of keys it has been idle long
   * enough to be full again, so forgetting it changes nothing for its key.
   */
  private evictIfFull(): void {
    if (this.buckets.size < (this.opts.maxBuckets ?? DEFAULT_MAX_BUCKETS)) return
    const idlest = this.buckets.keys().next()
    if (idlest.done !== true) this.buckets.delete(idlest.value)
  }
}

/** A limiter for `limit`, or none when its rate is 0 (limits off). */
export function rateLimiterFor(limit: RateLimit): RateLimiter | undefined {
  return limit.perSecond > 0 ? new MemoryRateLimiter(limit) : undefined
}
