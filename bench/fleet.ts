// A fleet on one machine: PostgreSQL, the platform (`miosa server`, role all) and two more
// edges (`miosa server --role edge`), each its own process of the built binary.
//
// 1. Route-change propagation: a static site is rolled back and forth; after each API
//    answer every edge is polled (every 2 ms) until it serves the new version. Prints the
//    median and p99 per edge and of the slowest edge per change. Budget (DESIGN.md): p99 ≤ 1 s.
// 2. Throughput: wrk through one extra edge process, through both extra edges at once
//    (two wrk, summed), and through Caddy's reverse_proxy, to one sandbox's server.
//
//   ./scripts/bench fleet        (installs PostgreSQL, wrk and Caddy; builds first)
//   BENCH_FLEET_CHANGES=100 BENCH_FLEET_SECONDS=10 npx tsx bench/fleet.ts

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Docker from 'dockerode'
import { runCli } from '../test/helpers/cli.js'
import { removePlatformResources } from '../test/helpers/docker-cleanup.js'
import { timeUntilServed } from '../test/helpers/edge-load.js'
import { createTestDatabase } from '../test/helpers/postgres.js'
import { callApi, newOrganizationKey, platformIdOf } from '../test/helpers/server-api.js'
import { startServerProcess } from '../test/helpers/server-process.js'
import type { ServerProcess } from '../test/helpers/server-process.js'
import { cpus, freePort, median, onPath, startPeer, wrk } from './lib/load.js'

const CHANGES = Number(process.env.BENCH_FLEET_CHANGES ?? 40)
const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_FLEET_ROUNDS ?? 3)
const CONNECTIONS = 64

const UPSTREAM = `require('node:http').createServer((req, res) => res.end('hello from the upstream\\n')).listen(3000, '0.0.0.0')`

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

async function main(): Promise<void> {
  const missing = ['wrk', 'caddy'].filter((command) => !onPath(command))
  if (missing.length > 0) throw new Error(`bench/fleet needs ${missing.join(' and ')} on PATH (scripts/bench installs them)`)
  const db = await createTestDatabase()
  const dataDir = mkdtempSync(join(tmpdir(), 'miosa-bench-fleet-'))
  const env = { MIOSA_DATABASE_URL: db.url, MIOSA_LOG_LEVEL: 'warn', MIOSA_SANDBOX_WARM_POOL: '0', MIOSA_RATE_LIMIT_RPS: '0', MIOSA_EDGE_RATE_LIMIT_RPS: '0' }
  const processes: ServerProcess[] = []
  let platformId: string | undefined
  let caddy: { child: { kill(): void } } | undefined
  try {
    const platform = await startServerProcess(['--data-dir', dataDir], env)
    processes.push(platform)
    const edges = await Promise.all([1, 2].map(() => startServerProcess(['--role', 'edge', '--data-dir', dataDir], env)))
    processes.push(...edges)
    const key = await newOrganizationKey(platform.apiUrl, platform.started.root_key as string, 'Fleet Bench')
    const call = (method: string, path: string, body?: unknown) => callApi(platform.apiUrl, key, method, path, body)
    platformId = await platformIdOf(db.url)
    const allEdges = [platform.edgeUrl, ...edges.map((e) => e.edgeUrl)]
    console.log(`fleet: 1 platform process and ${edges.length} more edges on PostgreSQL; ${cpus()} CPUs, Node ${process.version}`)

    // ── 1. propagation ──
    const site = join(dataDir, 'site')
    const deploy = async (marker: string) => {
      rmSync(site, { recursive: true, force: true })
      const { mkdirSync } = await import('node:fs')
      mkdirSync(site, { recursive: true })
      writeFileSync(join(site, 'index.html'), `${marker}\n`)
      const result = await runCli(['deploy', site, '--name', 'bench-site', '--json'], { env: { MIOSA_API_URL: platform.apiUrl, MIOSA_API_KEY: key, MIOSA_CONFIG: join(dataDir, 'cli.json') } })
      if (result.code !== 0) throw new Error(`deploy failed: ${result.stderr}`)
      return JSON.parse(result.stdout)
    }
    const v1 = await deploy('site v1')
    await deploy('site v2')
    const host = new URL(v1.url).host
    const perEdge: number[] = []
    const slowest: number[] = []
    for (let i = 0; i < CHANGES; i++) {
      const version = i % 2 === 0 ? 1 : 2
      await call('POST', `/deployments/${v1.deployment_id}/rollback`, { version_number: version })
      const times = await Promise.all(allEdges.map((edge) => timeUntilServed(edge, host, `site v${version}`, 5_000, 2)))
      perEdge.push(...times)
      slowest.push(Math.max(...times))
    }
    console.log('')
    console.log(`route change → served by the edge, ${CHANGES} rollbacks × ${allEdges.length} edges (ms after the API's answer)`)
    console.log(`  per edge          median ${median(perEdge).toFixed(1)}   p99 ${percentile(perEdge, 99).toFixed(1)}   max ${Math.max(...perEdge).toFixed(1)}`)
    console.log(`  slowest edge      median ${median(slowest).toFixed(1)}   p99 ${percentile(slowest, 99).toFixed(1)}`)
    console.log(`  budget: p99 ≤ 1000 ms: ${percentile(slowest, 99) <= 1000 ? 'met' : 'NOT met'}`)

    // ── 2. throughput ──
    const sandbox = await call('POST', '/sandboxes?wait=true', { template: 'node', name: 'fleet-bench', timeout: '1h' })
    await call('PATCH', `/sandboxes/${sandbox.id}`, { preview_public: true })
    await call('POST', `/sandboxes/${sandbox.id}/services`, { cmd: ['node', '-e', UPSTREAM] })
    const up = await call('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: 'for i in $(seq 50); do curl -sf localhost:3000 >/dev/null && exit 0; sleep 0.1; done; exit 1' })
    if (up.exit_code !== 0) throw new Error('the upstream did not start in the sandbox')
    const [container] = await new Docker().listContainers({ filters: { label: [`miosa.sandbox_id=${sandbox.id}`] } })
    const address = Object.values(container?.NetworkSettings.Networks ?? {})[0]?.IPAddress
    if (address === undefined || address === '') throw new Error('no address for the sandbox container')
    const caddyPort = await freePort()
    const caddyConfig = {
      admin: { disabled: true },
      logging: { logs: { default: { level: 'ERROR' } } },
      apps: { http: { servers: { bench: { listen: [`127.0.0.1:${caddyPort}`], automatic_https: { disable: true }, routes: [{ handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `${address}:3000` }], transport: { protocol: 'http', keep_alive: { max_idle_conns_per_host: 256 } } }] }] } } } },
    }
    writeFileSync(join(dataDir, 'caddy.json'), JSON.stringify(caddyConfig))
    caddy = await startPeer('caddy', 'caddy', ['run', '--config', join(dataDir, 'caddy.json')], caddyPort, { ...process.env, HOME: dataDir, XDG_DATA_HOME: dataDir, XDG_CONFIG_HOME: dataDir })
    const previewHost = `3000-${sandbox.slug}.sandbox.localhost`
    const run = (url: string, connections: number, threads: number, seconds: number) => wrk({ url, host: previewHost, connections, threads, seconds })
    const one: number[] = []
    const two: number[] = []
    const peer: number[] = []
    for (const edge of edges) await run(`${edge.edgeUrl.replace('localhost', '127.0.0.1')}/`, CONNECTIONS, 1, 1)
    for (let round = 0; round < ROUNDS; round++) {
      one.push((await run(`${edges[0]!.edgeUrl.replace('localhost', '127.0.0.1')}/`, CONNECTIONS, 2, SECONDS)).rps)
      const both = await Promise.all(edges.map((edge) => run(`${edge.edgeUrl.replace('localhost', '127.0.0.1')}/`, CONNECTIONS / 2, 1, SECONDS)))
      two.push(both.reduce((sum, r) => sum + r.rps, 0))
      peer.push((await run(`http://127.0.0.1:${caddyPort}/`, CONNECTIONS, 2, SECONDS)).rps)
    }
    console.log('')
    console.log(`wrk -c${CONNECTIONS} -d${SECONDS}s to a sandbox's server, ${ROUNDS} interleaved rounds, medians (req/s)`)
    console.log(`  one edge process           ${median(one).toFixed(0).padStart(8)}   (${one.map((r) => r.toFixed(0)).join(' / ')})`)
    console.log(`  two edge processes at once ${median(two).toFixed(0).padStart(8)}   (${two.map((r) => r.toFixed(0)).join(' / ')})`)
    console.log(`  caddy reverse_proxy        ${median(peer).toFixed(0).padStart(8)}   (${peer.map((r) => r.toFixed(0)).join(' / ')})`)
    console.log(`  two edges / caddy ${(median(two) / median(peer)).toFixed(2)}×   one edge / caddy ${(median(one) / median(peer)).toFixed(2)}×`)
  } finally {
    caddy?.child.kill()
    await Promise.all(processes.map((p) => p.stop()))
    if (platformId !== undefined) await removePlatformResources(platformId)
    await db.drop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
