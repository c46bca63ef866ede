import { Agent, request } from 'node:http'

// Requests to one app host through several edges at once, as a fleet's load balancer
// would spread them, bounded in count; every answer is checked.

export interface EdgeLoadResult {
  sent: number
  failures: string[]
  /** How many answers carried each body (a version's marker). */
  bodies: Map<string, number>
}

export function getThrough(edgeUrl: string, host: string, o: { agent?: Agent; path?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(new URL(edgeUrl).port), path: o.path ?? '/', headers: { host }, ...(o.agent === undefined ? {} : { agent: o.agent }) }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** `workers` request loops per edge until stop(), at most `max` requests in all. */
export function loadThroughEdges(edgeUrls: readonly string[], host: string, o: { workers?: number; max?: number } = {}) {
  const result: EdgeLoadResult = { sent: 0, failures: [], bodies: new Map() }
  const max = o.max ?? 50_000
  let running = true
  const loops = edgeUrls.map(async (edgeUrl) => {
    const agent = new Agent({ keepAlive: true, maxSockets: o.workers ?? 4 })
    const workers = Array.from({ length: o.workers ?? 4 }, async () => {
      while (running && result.sent < max) {
        result.sent++
        try {
          const res = await getThrough(edgeUrl, host, { agent })
          if (res.status !== 200) result.failures.push(`${new Date().toISOString()} ${edgeUrl}: ${res.status} ${res.body.slice(0, 200)}`)
          else result.bodies.set(res.body.trim(), (result.bodies.get(res.body.trim()) ?? 0) + 1)
        } catch (error) {
          result.failures.push(`${new Date().toISOString()} ${edgeUrl}: ${String(error)}`)
        }
      }
    })
    // Only once every loop of this edge is done: its sockets are shared.
    await Promise.all(workers)
    agent.destroy()
  })
  return {
    async stop(): Promise<EdgeLoadResult> {
      running = false
      await Promise.all(loops)
      return result
    },
  }
}

/** Milliseconds from now until `edgeUrl` answers `body` for `host` (polled every `intervalMs`), or throws past `timeoutMs`. */
export async function timeUntilServed(edgeUrl: string, host: string, body: string, timeoutMs = 10_000, intervalMs = 10): Promise<number> {
  const started = performance.now()
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    let last = ''
    while (performance.now() - started < timeoutMs) {
      const res = await getThrough(edgeUrl, host, { agent }).catch((error: unknown) => ({ status: 0, body: String(error) }))
      if (res.status === 200 && res.body.trim() === body) return performance.now() - started
      last = `${res.status} ${res.body.slice(0, 200)}`
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
    throw new Error(`${edgeUrl} did not serve "${body}" for ${host} within ${timeoutMs} ms (last: ${last})`)
  } finally {
    agent.destroy()
  }
}
