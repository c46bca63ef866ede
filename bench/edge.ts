// Edge proxy throughput: wrk against a small HTTP server inside a sandbox, three ways in
// one run: direct to the sandbox's address, through the platform's own edge (a public
// preview: routing, site lookup, access and proxying as in production), and through
// Caddy's reverse_proxy to the same address.
// Prints requests/s, p50/p99 latency (medians of interleaved rounds) and the ratios. Budget (issue 4): edge ≥ 1.2× Caddy's
// requests/s. On a 2-core machine a proxy shares the CPU with wrk and the upstream, so the
// ratio to direct is reported, not budgeted.
//
//   npx tsx bench/edge.ts        (needs wrk and caddy: `apt-get install wrk caddy`; scripts/bench installs them)
//   BENCH_EDGE_SECONDS=10 BENCH_EDGE_ROUNDS=5 BENCH_EDGE_CONNECTIONS=128 npx tsx bench/edge.ts

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestPlatform } from '../test/helpers/platform.js'
import type { TestPlatform } from '../test/helpers/platform.js'
import { cpus, freePort, median, onPath, startPeer, wrk } from './lib/load.js'

const SECONDS = Number(process.env.BENCH_EDGE_SECONDS ?? 5)
/** Rounds of direct, edge, caddy in turn; medians are reported (a 2-core VM is noisy). */
const ROUNDS = Number(process.env.BENCH_EDGE_ROUNDS ?? 3)
const CONNECTIONS = Number(process.env.BENCH_EDGE_CONNECTIONS ?? 64)
const THREADS = 2

/** The upstream, run by node inside the sandbox. */
const UPSTREAM = `
const http = require('node:http')
const body = Buffer.from('hello from the upstream\\n')
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
  res.end(body)
}).listen(3000, '0.0.0.0')
`

interface Result {
  name: string
  rps: number
  p50: number
  p99: number
  errors: number
}

type Summary = Result & { each: string }

interface SandboxUpstream {
  platform: TestPlatform
  /** Where the sandbox's server listens (its address on the workspace network). */
  direct: { host: string; port: number }
  /** The preview's hostname at the edge. */
  previewHost: string
  edgePort: number
}

/** A platform with one public node sandbox running the upstream on port 3000. */
async function startSandboxUpstream(): Promise<SandboxUpstream> {
  const platform = await startTestPlatform({ sandboxWarmPool: 0 })
  const org = await platform.newOrganization('Edge Bench Org')
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await platform.call(method, `/api/v1${path}`, { key: org.key, body })
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
    return res.json
  }
  const sandbox = await call('POST', '/sandboxes?wait=true', { template: 'node', name: 'edge-bench', timeout: '1h' })
  await call('PATCH', `/sandboxes/${sandbox.id}`, { preview_public: true })
  // A service: what an exec starts ends with it.
  const upstream = await call('POST', `/sandboxes/${sandbox.id}/services`, { cmd: ['node', '-e', UPSTREAM] })
  const up = await call('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: `for i in $(seq 50); do curl -sf localhost:3000 >/dev/null && exit 0; sleep 0.1; done; cat ${upstream.log_path}; exit 1` })
  if (up.exit_code !== 0) throw new Error(`the upstream did not start in the sandbox: ${up.stdout}${up.stderr}`)
  const record = await platform.platform.store.sandboxes.get({ organization_id: org.id }, sandbox.id)
  if (record?.runtime_ref === null || record === undefined) throw new Error('the sandbox has no container')
  const direct = await platform.platform.runtime.address(record.runtime_ref, 3000)
  return { platform, direct, previewHost: `3000-${sandbox.slug}.sandbox.localhost`, edgePort: Number(new URL(platform.edgeUrl).port) }
}

async function startCaddy(upstream: { host: string; port: number }, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const config = {
    admin: { disabled: true },
    logging: { logs: { default: { level: 'ERROR' } } },
    apps: {
      http: {
        servers: {
          bench: {
            listen: [`127.0.0.1:${port}`],
            automatic_https: { disable: true },
            routes: [
              {
                handle: [
                  {
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: `${upstream.host}:${upstream.port}` }],
                    // Caddy keeps 32 idle connections per upstream by default: with 64 wrk
                    // connections it would open and close the rest on every burst. Give it
                    // as many as the edge may keep, so the peer is measured at its best.
                    transport: { protocol: 'http', keep_alive: { max_idle_conns_per_host: 256 } },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  }
  const file = join(dir, 'caddy.json')
  writeFileSync(file, JSON.stringify(config))
  return startPeer('caddy', 'caddy', ['run', '--config', file], port, { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir })
}

async function measure(name: string, url: string, host?: string): Promise<Result> {
  const load = { url, threads: THREADS, connections: CONNECTIONS, host }
  await wrk({ ...load, seconds: 1 }) // warm-up: JIT, keep-alive pools
  const r = await wrk({ ...load, seconds: SECONDS })
  return { name, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors }
}

async function main(): Promise<void> {
  const missing = ['wrk', 'caddy'].filter((command) => !onPath(command))
  if (missing.length > 0) {
    console.error(`bench/edge needs ${missing.join(' and ')} on PATH (Debian: apt-get install wrk caddy; scripts/bench installs both).`)
    process.exitCode = 1
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'miosa-bench-edge-'))
  const upstream = await startSandboxUpstream()
  const caddy = await startCaddy(upstream.direct, dir)
  try {
    console.log(`wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s (1 s warm-up each), ${ROUNDS} interleaved rounds, medians; ${cpus()} CPUs, Node ${process.version}`)
    const targets: [string, string, string | undefined][] = [
      ['direct', `http://${upstream.direct.host}:${upstream.direct.port}/`, undefined],
      ['miosa edge', `http://127.0.0.1:${upstream.edgePort}/`, upstream.previewHost],
      ['caddy reverse_proxy', `http://127.0.0.1:${caddy.port}/`, upstream.previewHost],
    ]
    const rounds: Result[][] = targets.map(() => [])
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, [name, url, host]] of targets.entries()) rounds[i]!.push(await measure(name, url, host))
    }
    const results = rounds.map((runs): Summary => ({
      name: runs[0]!.name,
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
      each: runs.map((r) => r.rps.toFixed(0)).join(' / '),
    }))
    const [direct, miosa, peer] = results as [Summary, Summary, Summary]
    console.log('')
    console.log(`${'target'.padEnd(22)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(8)}   req/s per round`)
    for (const r of results) {
      console.log(`${r.name.padEnd(22)}${r.rps.toFixed(0).padStart(10)}${r.p50.toFixed(2).padStart(10)}${r.p99.toFixed(2).padStart(10)}${String(r.errors).padStart(8)}   ${r.each}`)
    }
    console.log('')
    const ratio = miosa.rps / peer.rps
    console.log(`edge / caddy   req/s ${ratio.toFixed(2)}×   p99 ${(miosa.p99 / peer.p99).toFixed(2)}×`)
    console.log(`edge / direct  req/s ${(miosa.rps / direct.rps).toFixed(2)}×   p99 ${(miosa.p99 / direct.p99).toFixed(2)}×`)
    console.log(`caddy / direct req/s ${(peer.rps / direct.rps).toFixed(2)}×   p99 ${(peer.p99 / direct.p99).toFixed(2)}×`)
    console.log(`budget: edge ≥ 1.2× caddy req/s: ${ratio >= 1.2 ? 'met' : 'NOT met'} (${ratio.toFixed(2)}×)`)
    if (results.some((r) => r.errors > 0)) console.log('warning: some requests failed (see errors column)')
  } finally {
    caddy.child.kill()
    await upstream.platform.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
