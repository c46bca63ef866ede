// Dynamic deployments on the real Docker Engine, through the HTTP API and the edge:
//
//   publish      a small Express app written in a sandbox: POST /publish?wait=true until the
//                first request its new instance serves. Cold: a package.json the Docker
//                build cache has never seen (npm install runs); warm: only server.js changed.
//                Peer: the same app by hand in this process (docker build of a plain
//                Dockerfile from the same template, docker run, poll until it answers).
//   rollback     to an older dynamic version: the API's answer (its instance started and
//                healthy, the route flipped) and the first request the edge serves from it
//   under load   wrk against the live URL during a publish, a rollback, and a scale 1 → 3 → 1:
//                failed requests (non-2xx and socket errors)
//
//   npx tsx bench/dynamic.ts          (wrk: scripts/bench installs it)
//
// Budget (issue 6): zero failed requests in all three.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Docker from 'dockerode'
import * as tar from 'tar'
import { startTestPlatform } from '../test/helpers/platform.js'
import { wrk } from './lib/load.js'
import type { WrkResult } from './lib/load.js'

const COLD_RUNS = 2
const WARM_RUNS = 5
const ROLLBACKS = 5

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function pct(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

function line(name: string, samples: number[], peer?: number[]): void {
  const ratio = peer === undefined ? '' : `  ×${(pct(samples, 50) / pct(peer, 50)).toFixed(2)} of the peer`
  console.log(`${name.padEnd(50)} n=${String(samples.length).padStart(2)}  median ${pct(samples, 50).toFixed(0).padStart(7)} ms  p95 ${pct(samples, 95).toFixed(0).padStart(7)} ms${ratio}`)
}

const serverJs = (tag: string) =>
  [
    "const express = require('express')",
    'const app = express()',
    `app.get('/', (req, res) => res.send('bench ${tag} v' + process.env.MIOSA_VERSION))`,
    'app.listen(Number(process.env.PORT || 8080))',
    '',
  ].join('\n')

const packageJson = (salt: string) =>
  JSON.stringify({ name: 'dynamic-bench', description: `cache salt ${salt}`, private: true, scripts: { start: 'node server.js' }, dependencies: { express: '^4.21.2' } })

/** wrk for `seconds` against the live host while `during` runs (started a second in). */
async function underLoad(edgePort: number, host: string, seconds: number, during: () => Promise<void>): Promise<WrkResult> {
  const loaded = wrk({ url: `http://127.0.0.1:${edgePort}/`, host, seconds, threads: 2, connections: 16 })
  await sleep(1000)
  await during()
  return loaded
}

/** The peer: docker build of a plain Dockerfile from the node template, docker run, first answer. */
async function peerRun(docker: Docker, baseImage: string, caBundle: string | undefined, salt: string, tag: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'miosa-bench-peer-'))
  const image = `miosa-bench-peer:${tag.toLowerCase()}`
  let container: Docker.Container | undefined
  try {
    await writeFile(join(dir, 'package.json'), packageJson(salt))
    await writeFile(join(dir, 'server.js'), serverJs(tag))
    await writeFile(join(dir, 'ca.crt'), caBundle === undefined ? '' : await readFile(caBundle))
    await writeFile(
      join(dir, 'Dockerfile'),
      [
        `FROM ${baseImage}`,
        'COPY ca.crt /etc/miosa/ca-certificates.crt',
        'ENV NODE_EXTRA_CA_CERTS=/etc/miosa/ca-certificates.crt',
        'WORKDIR /workspace',
        'COPY package.json ./',
        'RUN npm install --omit=dev --no-audit --no-fund',
        'COPY server.js ./',
        'ENV PORT=8080',
        'CMD ["node", "server.js"]',
        '',
      ].join('\n'),
    )
    const started = performance.now()
    const stream = await docker.buildImage(tar.create({ cwd: dir }, ['Dockerfile', 'package.json', 'server.js', 'ca.crt']) as unknown as NodeJS.ReadableStream, { t: image, rm: true })
    const events = await new Promise<{ error?: string }[]>((resolve, reject) => docker.modem.followProgress(stream, (error, result) => (error ? reject(error) : resolve(result as { error?: string }[]))))
    const failed = events.find((e) => e.error !== undefined)
    if (failed !== undefined) throw new Error(`peer build failed: ${failed.error}`)
    container = await docker.createContainer({ Image: image, HostConfig: { NetworkMode: 'bridge' } })
    await container.start()
    const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress as string
    for (;;) {
      const body = await get(ip, 8080).catch(() => '')
      if (body.includes(`bench ${tag}`)) break
      await sleep(5)
    }
    return performance.now() - started
  } finally {
    await container?.remove({ force: true }).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

function get(host: string, port: number, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(body))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

async function main(): Promise<void> {
  const t = await startTestPlatform({ sandboxWarmPool: 0, instanceReconcileIntervalMs: 250 })
  const edgePort = Number(new URL(t.edgeUrl).port)
  const docker = new Docker()
  const peerImages: string[] = []
  try {
    const org = await t.newOrganization('Dynamic Bench Org')
    const api = async (method: string, path: string, body?: unknown): Promise<any> => {
      const res = await t.call(method, `/api/v1${path}`, { key: org.key, body })
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
      return res.json
    }
    const write = async (sandboxId: string, path: string, content: string) => {
      const res = await t.call('PUT', `/api/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(path)}`, { key: org.key, rawBody: content, headers: { 'content-type': 'application/octet-stream' } })
      if (res.status !== 200) throw new Error(`write ${path}: ${res.status} ${res.text}`)
    }
    const live = (host: string) => get('127.0.0.1', edgePort, { host })

    const sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'dynamic-bench', timeout: '1h' })
    const deployment = await api('POST', '/deployments', { name: 'dynamic-bench', health_check: { interval_seconds: 0.25 }, drain_timeout_seconds: 10 })
    const host = new URL(deployment.url).host
    const baseImage = (await t.platform.runtime.listTemplates()).find((tpl) => tpl.name === 'node')?.image as string

    /** Publishes what the sandbox holds and answers ms until the edge serves the new version. */
    const publish = async (expected: string): Promise<{ ms: number; version: any }> => {
      const started = performance.now()
      const version = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
      if (version.status !== 'ready') throw new Error(`publish ended ${version.status}: ${version.error}`)
      while (!(await live(host).catch(() => '')).includes(expected)) await sleep(5)
      return { ms: performance.now() - started, version }
    }

    const cold: number[] = []
    const coldPeer: number[] = []
    const versions: any[] = []
    for (let run = 1; run <= COLD_RUNS; run++) {
      const salt = `${Date.now()}-${run}`
      await write(sandbox.id, '/workspace/package.json', packageJson(salt))
      await write(sandbox.id, '/workspace/server.js', serverJs(`cold${run}`))
      const { ms, version } = await publish(`bench cold${run}`)
      cold.push(ms)
      versions.push(version)
      const tag = `cold${run}`
      coldPeer.push(await peerRun(docker, baseImage, t.platform.config.caBundle, `peer-${salt}`, tag))
      peerImages.push(`miosa-bench-peer:${tag}`)
    }
    const warm: number[] = []
    const warmPeer: number[] = []
    const salt = `${Date.now()}-warm`
    await write(sandbox.id, '/workspace/package.json', packageJson(salt))
    await write(sandbox.id, '/workspace/server.js', serverJs('warm0'))
    await publish('bench warm0')
    await peerRun(docker, baseImage, t.platform.config.caBundle, `peer-${salt}`, 'warm0')
    peerImages.push('miosa-bench-peer:warm0')
    for (let run = 1; run <= WARM_RUNS; run++) {
      await write(sandbox.id, '/workspace/server.js', serverJs(`warm${run}`))
      const { ms, version } = await publish(`bench warm${run}`)
      warm.push(ms)
      versions.push(version)
      warmPeer.push(await peerRun(docker, baseImage, t.platform.config.caBundle, `peer-${salt}`, `warm${run}`))
      peerImages.push(`miosa-bench-peer:warm${run}`)
    }
    line('publish, cold build cache → first request served', cold, coldPeer)
    line('  peer: docker build + run → first answer (cold)', coldPeer)
    line('publish, warm build cache → first request served', warm, warmPeer)
    line('  peer: docker build + run → first answer (warm)', warmPeer)

    const answer: number[] = []
    const served: number[] = []
    for (let i = 0; i < ROLLBACKS; i++) {
      const to = versions[i % 2 === 0 ? 0 : versions.length - 1]
      const started = performance.now()
      await api('POST', `/deployments/${deployment.id}/rollback`, { version_id: to.id })
      answer.push(performance.now() - started)
      const body = await live(host)
      served.push(performance.now() - started)
      if (!body.endsWith(`v${to.version_number}`)) throw new Error(`after rolling back to ${to.version_number} the edge served: ${body}`)
    }
    line('rollback to an older dynamic version: API answer', answer)
    line('rollback: first request served by it', served)

    const duringPublish = await underLoad(edgePort, host, 25, async () => {
      await write(sandbox.id, '/workspace/server.js', serverJs('loaded'))
      await publish('bench loaded')
    })
    const duringRollback = await underLoad(edgePort, host, 10, async () => {
      await api('POST', `/deployments/${deployment.id}/rollback`, { version_id: versions[0].id })
    })
    const duringScale = await underLoad(edgePort, host, 25, async () => {
      await api('PATCH', `/deployments/${deployment.id}`, { instances: 3 })
      for (;;) {
        const healthy = (await api('GET', `/deployments/${deployment.id}/instances`)).data.filter((i: any) => i.state === 'healthy').length
        if (healthy === 3) break
        await sleep(100)
      }
      await sleep(1000)
      await api('PATCH', `/deployments/${deployment.id}`, { instances: 1 })
      for (;;) {
        if ((await api('GET', `/deployments/${deployment.id}/instances`)).data.length === 1) break
        await sleep(100)
      }
    })
    console.log(`under load (wrk -t2 -c16): publish ${duringPublish.requests} requests, ${duringPublish.errors} failed`)
    console.log(`under load (wrk -t2 -c16): rollback ${duringRollback.requests} requests, ${duringRollback.errors} failed`)
    console.log(`under load (wrk -t2 -c16): scale 1 → 3 → 1 ${duringScale.requests} requests, ${duringScale.errors} failed`)
    console.log('\nBudget: zero failed requests during a publish, a rollback and a scale.')
  } finally {
    for (const image of peerImages) await docker.getImage(image).remove({ force: true }).catch(() => {})
    await t.close()
  }
}

await main()
