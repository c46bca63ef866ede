// Sandbox costs on the real Docker Engine, through the platform's HTTP API, each against
// a peer run in the same process: plain Docker (Engine API over the unix socket, what a
// thin wrapper around Docker does) doing the same work. Time to interactive also has a
// second peer: plain Docker on a user-defined bridge network, the isolation every
// sandbox has (its workspace's network), which costs Docker itself ~100 ms a start.
//
//   time to interactive  create a sandbox, then `node -v` in it answers (≥30 runs one at a
//                        time with the warm pool, the same cold, and 10 at once)
//   exec round trip      `true` in a running sandbox
//   stop → resume        and the first exec after it
//   snapshot, fork       of a Next.js sandbox with its node_modules installed
//   workspace snapshots  snapshot and fork → first exec with 0, 338 MB and 1 GB written in
//                        /workspace, against the `docker commit` path in the same run (the
//                        driver directly); resume of a stopped sandbox; idle memory
//
//   npx tsx bench/sandbox.ts [--runs 30] [--only tti|snapshots]   (only: those rows alone)
//
// Templates must be built (`miosa templates build`, or any test run); the bench builds
// what is missing first and does not time that.

import { PassThrough } from 'node:stream'
import Docker from 'dockerode'
import pino from 'pino'
import { loadConfig } from '../src/config.js'
import { TemplateImages } from '../src/runtime/docker/template-images.js'
import { workspaceSnapshots } from './lib/workspace-snapshots.js'
import { startTestPlatform } from '../test/helpers/platform.js'
import type { TestPlatform } from '../test/helpers/platform.js'

const RUNS = Number(process.argv[process.argv.indexOf('--runs') + 1] || 30) || 30
const AT_ONCE = 10
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined
const ONLY_TTI = ONLY === 'tti'
const EXEC_RUNS = 300
const LIFECYCLE_RUNS = 10
const SNAPSHOT_RUNS = 5
/** Sequential creates wait this long for the warm pool to refill, like an agent that creates a sandbox every few seconds. */
const POOL_REFILL_WAIT_MS = 2_000

const docker = new Docker()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Stats {
  name: string
  n: number
  median: number
  p95: number
  p99: number
}

function stats(name: string, samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
  return { name, n: sorted.length, median: at(50), p95: at(95), p99: at(99) }
}

function report(ours: Stats, ...peers: Stats[]): void {
  const ratio = peers.map((peer) => `  | ${peer.name}: median ${peer.median.toFixed(1)} ms → ${(ours.median / peer.median).toFixed(2)}×`).join('')
  console.log(`${ours.name.padEnd(46)} n=${String(ours.n).padStart(3)}  median ${ours.median.toFixed(1).padStart(7)} ms  p95 ${ours.p95.toFixed(1).padStart(7)}  p99 ${ours.p99.toFixed(1).padStart(7)}${ratio}`)
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const start = process.hrtime.bigint()
  const value = await work()
  return [Number(process.hrtime.bigint() - start) / 1e6, value]
}

// ── the platform, through its API ─────────────────────────────────────────────

class Api {
  constructor(
    private readonly t: TestPlatform,
    private readonly key: string,
  ) {}

  async call(method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${this.t.apiUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const json = (await res.json()) as any
    if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`)
    return json
  }

  exec(id: string, cmd: string | string[]): Promise<any> {
    return this.call('POST', `/sandboxes/${id}/exec`, { cmd })
  }

  /** Create, then `node -v`: the moment a caller can use the sandbox. */
  async timeToInteractive(template = 'node'): Promise<[number, string]> {
    let id = ''
    const [ms] = await timed(async () => {
      id = (await this.call('POST', '/sandboxes?wait=true', { template, persistent: false })).id
      const result = await this.exec(id, ['node', '-v'])
      if (!String(result.stdout).startsWith('v22')) throw new Error(`node -v answered ${JSON.stringify(result)}`)
    })
    return [ms, id]
  }

  destroy(id: string): Promise<unknown> {
    return this.call('DELETE', `/sandboxes/${id}`)
  }
}

async function platformWith(warmPool: number): Promise<{ t: TestPlatform; api: Api }> {
  const t = await startTestPlatform({ sandboxWarmPool: warmPool })
  const org = await t.newOrganization('Bench Org')
  return { t, api: new Api(t, org.key) }
}

// ── the peer: plain Docker ────────────────────────────────────────────────────

async function dockerExec(container: Docker.Container, cmd: string[]): Promise<string> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true })
  const stream = await exec.start({ hijack: true, stdin: false })
  const out = new PassThrough()
  let text = ''
  out.on('data', (c: Buffer) => (text += c.toString()))
  docker.modem.demuxStream(stream, out, out)
  await new Promise((resolve) => stream.on('end', resolve))
  return text
}

async function peerTimeToInteractive(image: string, network?: string): Promise<[number, Docker.Container]> {
  let container: Docker.Container | undefined
  const [ms] = await timed(async () => {
    container = await docker.createContainer({
      Image: image,
      Cmd: ['sleep', 'infinity'],
      HostConfig: { Init: true, AutoRemove: false, ...(network === undefined ? {} : { NetworkMode: network }) },
    })
    await container.start()
    const out = await dockerExec(container, ['node', '-v'])
    if (!out.startsWith('v22')) throw new Error(`peer node -v answered ${out}`)
  })
  return [ms, container as Docker.Container]
}

// ── the runs ──────────────────────────────────────────────────────────────────

/** Snapshot, then fork to its first exec, SNAPSHOT_RUNS times, each after a small change. */
async function snapshotAndFork(api: Api, id: string, label: string): Promise<void> {
  const snapshotMs: number[] = []
  const forkMs: number[] = []
  for (let i = 0; i < SNAPSHOT_RUNS; i++) {
    await api.exec(id, `echo ${i} >> /workspace/changes.txt`)
    const [ms, snapshot] = await timed(() => api.call('POST', `/sandboxes/${id}/snapshots`, { name: `bench ${i}` }))
    snapshotMs.push(ms)
    const [forkTime, fork] = await timed(async () => {
      const created = await api.call('POST', `/sandboxes/${id}/fork`, {})
      await api.exec(created.id, ['true'])
      return created
    })
    forkMs.push(forkTime)
    await api.destroy(fork.id)
    await api.call('DELETE', `/snapshots/${snapshot.id}`)
  }
  report(stats(`snapshot (${label})`, snapshotMs))
  report(stats(`fork → first exec (${label})`, forkMs))
}

/** Exec round trips, then stop → resume and an exec that resumes, in one sandbox. */
async function execAndLifecycle(api: Api, peerExecStats: Stats): Promise<void> {
  const sandbox = (await api.call('POST', '/sandboxes?wait=true', { template: 'node' })).id as string
  for (let i = 0; i < 50; i++) await api.exec(sandbox, ['true'])
  const exec: number[] = []
  for (let i = 0; i < EXEC_RUNS; i++) exec.push((await timed(() => api.exec(sandbox, ['true'])))[0])
  report(stats('exec true (API round trip)', exec), peerExecStats)
  const shell: number[] = []
  for (let i = 0; i < 100; i++) shell.push((await timed(() => api.exec(sandbox, 'true')))[0])
  report(stats('exec "true" through sh -lc', shell))

  const stopMs: number[] = []
  const resumeMs: number[] = []
  const resumeExecMs: number[] = []
  for (let i = 0; i < LIFECYCLE_RUNS; i++) {
    await api.exec(sandbox, `echo ${i} > /workspace/kept.txt`)
    stopMs.push((await timed(() => api.call('POST', `/sandboxes/${sandbox}/stop`)))[0])
    resumeMs.push((await timed(() => api.call('POST', `/sandboxes/${sandbox}/resume`)))[0])
    await api.call('POST', `/sandboxes/${sandbox}/stop`)
    // A paused sandbox resumes on its next exec: the cost a caller sees.
    const [ms, result] = await timed(() => api.exec(sandbox, ['cat', '/workspace/kept.txt']))
    if (result.stdout !== `${i}\n`) throw new Error(`resume lost a file: ${JSON.stringify(result)}`)
    resumeExecMs.push(ms)
  }
  report(stats('stop', stopMs))
  report(stats('resume', resumeMs))
  report(stats('exec on a paused sandbox (resume + exec)', resumeExecMs))
  await api.destroy(sandbox)
}

/** Snapshot and fork of a Next.js sandbox, before and after its node_modules are rewritten in it. */
async function nextjsSnapshots(api: Api): Promise<void> {
  // Snapshot and fork of a Next.js workspace with node_modules: first as the template
  // ships it (node_modules in the image's layers), then rewritten inside the sandbox, as
  // after an `npm install` there (all of it in the container's own writable layer).
  const next = (await api.call('POST', '/sandboxes?wait=true', { template: 'nextjs' })).id as string
  const size = await api.exec(next, 'du -sm node_modules | cut -f1; find node_modules -type f | wc -l')
  const [mb, files] = String(size.stdout).trim().split('\n')
  console.log(`\nnode_modules of the nextjs template: ${mb} MB in ${files} files`)
  await snapshotAndFork(api, next, 'node_modules in the image')
  const rewrite = await api.call('POST', `/sandboxes/${next}/exec`, { cmd: 'cp -a node_modules nm && rm -rf node_modules && mv nm node_modules', timeout: 600 })
  if (rewrite.exit_code !== 0) throw new Error(`rewriting node_modules failed: ${rewrite.stderr}`)
  await snapshotAndFork(api, next, 'node_modules written in the sandbox')
  await api.destroy(next)
}

async function main(): Promise<void> {
  const config = loadConfig({}, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
  const images = new TemplateImages({
    docker,
    cacheDir: config.cacheDir,
    ...(config.caBundle === undefined ? {} : { caBundle: config.caBundle }),
    logger: pino({ level: 'silent' }),
  })
  const nodeImage = await images.ensure('node')
  await images.ensure('nextjs')
  console.log(`miosa sandbox bench: ${RUNS} sequential runs, ${AT_ONCE} at once; Docker ${(await docker.version()).Version}\n`)
  if (ONLY === 'snapshots') return workspaceSnapshots(report, stats)

  // Peers first: plain Docker create + start + exec `node -v` (on the default bridge, then
  // on a network of its own), and exec `true`.
  const network = await docker.createNetwork({ Name: `miosa-bench-peer-${process.pid}`, Driver: 'bridge' })
  const peer = async (label: string, on?: string) => {
    const tti: number[] = []
    const containers: Docker.Container[] = []
    for (let i = 0; i < RUNS; i++) {
      const [ms, c] = await peerTimeToInteractive(nodeImage, on)
      tti.push(ms)
      containers.push(c)
    }
    const exec: number[] = []
    const probe = containers[0] as Docker.Container
    for (let i = 0; i < 100; i++) exec.push((await timed(() => dockerExec(probe, ['true'])))[0])
    const atOnce = await Promise.all(Array.from({ length: AT_ONCE }, () => peerTimeToInteractive(nodeImage, on)))
    await Promise.all([...containers, ...atOnce.map(([, c]) => c)].map((c) => c.remove({ force: true })))
    return {
      tti: stats(`docker${label}`, tti),
      atOnce: stats(`docker${label}, ${AT_ONCE} at once`, atOnce.map(([ms]) => ms)),
      exec: stats('docker exec true', exec),
    }
  }
  const plain = await peer('')
  const networked = await peer(' (own network)', network.id)
  await network.remove()
  const peerExecStats = plain.exec
  console.log(`peers: ${plain.tti.name} ${plain.tti.median.toFixed(1)} ms, ${networked.tti.name} ${networked.tti.median.toFixed(1)} ms (create + start + exec node -v)\n`)

  // Warm pool on (the default, 2 per workspace and template).
  {
    const { t, api } = await platformWith(2)
    try {
      await api.destroy((await api.timeToInteractive())[1]) // the first create fills the pool
      const tti: number[] = []
      for (let i = 0; i < RUNS; i++) {
        await sleep(POOL_REFILL_WAIT_MS)
        const [ms, id] = await api.timeToInteractive()
        tti.push(ms)
        await api.destroy(id)
      }
      report(stats('TTI, warm pool (create → node -v)', tti), plain.tti, networked.tti)

      await sleep(POOL_REFILL_WAIT_MS * 2)
      const atOnce = await Promise.all(Array.from({ length: AT_ONCE }, () => api.timeToInteractive()))
      report(stats(`TTI, ${AT_ONCE} at once (pool of 2, rest cold)`, atOnce.map(([ms]) => ms)), plain.atOnce, networked.atOnce)
      await Promise.all(atOnce.map(([, id]) => api.destroy(id)))
      // The burst grew the pool (up to MIOSA_SANDBOX_WARM_POOL_MAX, 8): the next one is mostly claims.
      await sleep(POOL_REFILL_WAIT_MS * 4)
      const again = await Promise.all(Array.from({ length: AT_ONCE }, () => api.timeToInteractive()))
      report(stats(`TTI, ${AT_ONCE} at once again (pool grown to 8)`, again.map(([ms]) => ms)), plain.atOnce, networked.atOnce)
      await Promise.all(again.map(([, id]) => api.destroy(id)))
      if (!ONLY_TTI) await execAndLifecycle(api, peerExecStats)
    } finally {
      await t.close()
    }
  }

  // Cold: no warm pool, every create starts a container.
  {
    const { t, api } = await platformWith(0)
    try {
      await api.destroy((await api.timeToInteractive())[1])
      const tti: number[] = []
      for (let i = 0; i < RUNS; i++) {
        const [ms, id] = await api.timeToInteractive()
        tti.push(ms)
        await api.destroy(id)
      }
      report(stats('TTI, cold (no warm pool)', tti), plain.tti, networked.tti)
      const atOnce = await Promise.all(Array.from({ length: AT_ONCE }, () => api.timeToInteractive()))
      report(stats(`TTI, ${AT_ONCE} at once, cold (no warm pool)`, atOnce.map(([ms]) => ms)), plain.atOnce, networked.atOnce)
      await Promise.all(atOnce.map(([, id]) => api.destroy(id)))
      if (!ONLY_TTI) await nextjsSnapshots(api)
    } finally {
      await t.close()
    }
  }

  if (!ONLY_TTI) await workspaceSnapshots(report, stats)
  console.log('\nBudgets (DESIGN.md): TTI ≤ 150 ms, exec ≤ 20 ms (medians).')
}

await main()
