import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RateLimiter } from '../core/rate-limiter.js'
import { sendPage } from './pages.js'

// Requests per preview or app host: one tenant's flood on its host is answered 429 here,
// before any lookup or upstream, so other hosts keep their share of the edge. The page is
// neutral (no branding lookup): refusing must stay cheaper than serving.

/** True when the host is over its limit and the request was answered 429. */
export function refusedForRate(limiter: RateLimiter, host: string | undefined, req: IncomingMessage, res: ServerResponse): boolean {
  const decision = limiter.take(bucketOf(host))
  if (decision.allowed) return false
  const seconds = String(decision.retryAfterSeconds)
  sendPage(
    req,
    res,
    { status: 429, title: 'Too many requests', message: `This site is getting more requests than it may be served right now. Try again in ${seconds} s.` },
    { 'retry-after': seconds },
  )
  return true
}

/** The same for a WebSocket upgrade: true when refused (the socket is answered and closed). */
export function refusedUpgradeForRate(limiter: RateLimiter, host: string | undefined, socket: Duplex): boolean {
  const decision = limiter.take(bucketOf(host))
  if (decision.allowed) return false
  if (!socket.destroyed) {
    const body = '429 Too Many Requests\n'
    socket.end(
      `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: ${decision.retryAfterSeconds}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    )
  }
  return true
}

function bucketOf(host: string | undefined): string {
  return host === undefined ? '' : host.toLowerCase()
}
