// The API's cost of rate limits per key: wrk against a cheap authenticated GET
// (/api/v1/whoami: key lookup, no store query beyond it) on three platforms in one run:
// limits off; limits on but never reached (the bucket check on every request); and a key
// far over its limit (every answer a 429, the cost of refusing). Interleaved rounds,
// medians; then sequential latency (median, p95, p99) over one keep-alive connection.
//
//   npx tsx bench/rate-limits.ts      (needs wrk: `apt-get install wrk`; scripts/bench installs it)
//   BENCH_RATE_SECONDS=10 BENCH_RATE_ROUNDS=5 npx tsx bench/rate-limits.ts

import { createHash } from 'node:crypto'
import { Agent, request } from 'node:http'
import type { Config } from '../src/config.js'
import { MemoryRateLimiter } from '../src/core/rate-limiter.js'
import { startTestPlatform } from '../test/helpers/platform.js'
import type { TestPlatform } from '../test/helpers/platform.js'
import { cpus, median, onPath, wrk } from './lib/load.js'

const SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_RATE_ROUNDS ?? 3)
const CONNECTIONS = 32
const THREADS = 2
const SEQUENTIAL = 2000

interface Target {
  name: string
  platform: TestPlatform
  url: string
  headers: Record<string, string>
}

async function target(name: string, overrides: Partial<Config>): Promise<Target> {
  const platform = await startTestPlatform(overrides)
  const org = await platform.newOrganization('Bench Org')
  return { name, platform, url: `${platform.apiUrl}/api/v1/whoami`, headers: { authorization: `Bearer ${org.key}` } }
}

function once(agent: Agent, t: Target): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(t.url, { agent, headers: t.headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

async function sequential(t: Target): Promise<{ median: number; p95: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  for (let i = 0; i < 200; i++) await once(agent, t)
  const samples: number[] = []
  for (let i = 0; i < SEQUENTIAL; i++) {
    const start = process.hrtime.bigint()
    await once(agent, t)
    samples.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  agent.destroy()
  samples.sort((a, b) => a - b)
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] as number
  return { median: pct(50), p95: pct(95), p99: pct(99) }
}

/** What the API adds per request, alone: hashing the key and taking from its bucket (10,000 keys in the map). */
function checkCostMicros(): number {
  const limiter = new MemoryRateLimiter({ perSecond: 1e9, burst: 1e9 })
  const keys = Array.from({ length: 10_000 }, (_, i) => `msk_${String(i).padStart(40, '0')}`)
  const n = 1_000_000
  for (let i = 0; i < 100_000; i++) limiter.take(createHash('sha256').update(keys[i % keys.length] as string).digest('base64url'))
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) limiter.take(createHash('sha256').update(keys[i % keys.length] as string).digest('base64url'))
  return Number(process.hrtime.bigint() - start) / 1e3 / n
}

async function main(): Promise<void> {
  if (!onPath('wrk')) {
    console.error('bench/rate-limits needs wrk on PATH (Debian: apt-get install wrk; scripts/bench installs it).')
    process.exitCode = 1
    return
  }
  const targets = [
    await target('limits off', { rateLimitRps: 0 }),
    await target('limits on, not reached', { rateLimitRps: 1e9, rateLimitBurst: 1e9 }),
    // The bucket of 3 is spent by the first requests: what follows measures refusals.
    await target('limits on, key refused', { rateLimitRps: 0.001, rateLimitBurst: 3 }),
  ]
  try {
    console.log(`GET /api/v1/whoami; wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s (1 s warm-up each), ${ROUNDS} interleaved rounds, medians; ${cpus()} CPUs, Node ${process.version}`)
    const rounds = targets.map(() => [] as { rps: number; p50: number; p99: number; non2xx: number }[])
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, t] of targets.entries()) {
        const load = { url: t.url, threads: THREADS, connections: CONNECTIONS, headers: t.headers }
        await wrk({ ...load, seconds: 1 })
        const r = await wrk({ ...load, seconds: SECONDS })
        rounds[i]!.push({ rps: r.rps, p50: r.p50, p99: r.p99, non2xx: r.errors })
      }
    }
    const latencies = []
    for (const t of targets) latencies.push(await sequential(t))
    console.log('')
    console.log(`${'target'.padEnd(26)}${'req/s'.padStart(9)}${'vs off'.padStart(8)}${'p50'.padStart(8)}${'p99'.padStart(8)}${'non-2xx'.padStart(10)}   ${'seq median'.padStart(10)}${'p95'.padStart(7)}${'p99'.padStart(7)}   req/s per round`)
    const offRps = median(rounds[0]!.map((r) => r.rps))
    for (const [i, t] of targets.entries()) {
      const runs = rounds[i]!
      const rps = median(runs.map((r) => r.rps))
      const seq = latencies[i]!
      console.log(
        `${t.name.padEnd(26)}${rps.toFixed(0).padStart(9)}${`${(rps / offRps).toFixed(2)}×`.padStart(8)}` +
          `${median(runs.map((r) => r.p50)).toFixed(2).padStart(8)}${median(runs.map((r) => r.p99)).toFixed(2).padStart(8)}` +
          `${String(runs.reduce((sum, r) => sum + r.non2xx, 0)).padStart(10)}   ` +
          `${seq.median.toFixed(2).padStart(10)}${seq.p95.toFixed(2).padStart(7)}${seq.p99.toFixed(2).padStart(7)}   ${runs.map((r) => r.rps.toFixed(0)).join(' / ')}`,
      )
    }
    console.log('\n(latencies in ms; non-2xx on the refused key are its 429s, elsewhere failures)')
    console.log(`the check alone (sha256 of the key, then its bucket; 10,000 keys held): ${checkCostMicros().toFixed(2)} µs per request`)
  } finally {
    for (const t of targets) await t.platform.close()
  }
}

await main()
