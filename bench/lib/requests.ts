import { Agent, request } from 'node:http'

// One HTTP target measured from this process: sequential latency over a keep-alive
// connection (median, p95, p99), then throughput with `concurrency` connections for a
// bounded time. For benches whose peer is in the same process (no wrk needed).

export interface Target {
  name: string
  url: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: () => string
}

export interface Measured {
  name: string
  median: number
  p95: number
  p99: number
  rps: number
}

export interface MeasureOptions {
  warmup: number
  sequential: number
  concurrency: number
  throughputMs: number
}

function once(agent: Agent, t: Target): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = t.body?.()
    const req = request(t.url, { method: t.method, agent, headers: { ...t.headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode !== undefined && res.statusCode < 300 ? resolve() : reject(new Error(`${t.name}: HTTP ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}

export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export async function measure(t: Target, o: MeasureOptions): Promise<Measured> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency })
  for (let i = 0; i < o.warmup; i++) await once(agent, t)
  const samples: number[] = []
  for (let i = 0; i < o.sequential; i++) {
    const start = process.hrtime.bigint()
    await once(agent, t)
    samples.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  samples.sort((a, b) => a - b)
  let done = 0
  const deadline = Date.now() + o.throughputMs
  const started = Date.now()
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < deadline) {
        await once(agent, t)
        done++
      }
    }),
  )
  agent.destroy()
  return { name: t.name, median: pct(samples, 50), p95: pct(samples, 95), p99: pct(samples, 99), rps: (done * 1000) / (Date.now() - started) }
}
