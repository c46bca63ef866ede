import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { MiosaError } from '../core/errors.js'
import type { RateLimiter } from '../core/rate-limiter.js'

// Rate limits per API key, checked first thing (before the key is looked up, before the
// body is read), so a flood costs one hash and a map lookup per request. The bucket is
// named by the key's hash: the same whether the key is valid or not, and never the key.
// The error handler turns `retry_after_seconds` into the Retry-After header.

const BEARER = /^Bearer\s+(\S+)\s*$/i

export function limitRequestsPerKey(app: FastifyInstance, limiter: RateLimiter): void {
  app.addHook('onRequest', async (request) => {
    const match = request.headers.authorization?.match(BEARER)
    // No key: the route is public or authentication refuses it; neither costs a bucket.
    if (match === null || match === undefined) return
    const decision = limiter.take(createHash('sha256').update(match[1] as string).digest('base64url'))
    if (decision.allowed) return
    const { perSecond, burst } = limiter.limit
    throw new MiosaError(
      'rate_limited',
      `rate limit: this API key may make ${perSecond} requests per second (${burst} at once); retry in ${decision.retryAfterSeconds} s`,
      { details: { limit: 'api_key_requests', requests_per_second: perSecond, burst, retry_after_seconds: decision.retryAfterSeconds } },
    )
  })
}
