// Publishing costs on the real Docker Engine, through the HTTP API and the edge:
//
//   publish      a 1,000-file static site written in a sandbox: POST /publish?wait=true
//                (snapshot, plan, release, ready) and then the first byte served by the edge
//   rollback     the API's answer, and the first request the edge serves from the old version
//   under load   wrk against the live URL during 20 rollbacks back and forth: failed requests
//
//   npx tsx bench/publish.ts          (wrk: scripts/bench installs it)
//
// Budgets (issue 5): publish ≤ 3 s, rollback answer ≤ 50 ms, zero failed requests.
// Static serving against nginx is bench/publish-static.ts.

import { request } from 'node:http'
import { startTestPlatform } from '../test/helpers/platform.js'
import { wrk } from './lib/load.js'

const FILES = 1000
const RUNS = 5
const ROLLBACKS = 20

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function pct(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

function line(name: string, samples: number[]): void {
  console.log(`${name.padEnd(44)} n=${String(samples.length).padStart(2)}  median ${pct(samples, 50).toFixed(1).padStart(8)} ms  p95 ${pct(samples, 95).toFixed(1).padStart(8)} ms`)
}

async function main(): Promise<void> {
  const t = await startTestPlatform({ sandboxWarmPool: 0 })
  const edgePort = Number(new URL(t.edgeUrl).port)
  try {
    const org = await t.newOrganization('Publish Bench Org')
    const api = async (method: string, path: string, body?: unknown): Promise<any> => {
      const res = await t.call(method, `/api/v1${path}`, { key: org.key, body })
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
      return res.json
    }
    /** The body the edge serves at `/` for the deployment's managed hostname. */
    const live = (host: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: edgePort, path: '/', headers: { host } }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (body += c))
          res.on('end', () => resolve(body))
        })
        req.on('error', reject)
        req.end()
      })

    const sandbox = await api('POST', '/sandboxes?wait=true', { template: 'node', name: 'publish-bench', timeout: '1h' })
    // 1,000 files: an index.html, 999 small assets in 10 folders, in place of the template's starter app.
    const made = await api('POST', `/sandboxes/${sandbox.id}/exec`, {
      cmd: `cd /workspace && find . -mindepth 1 -delete && for d in $(seq 0 9); do mkdir -p assets/$d; done && for i in $(seq 1 ${FILES - 1}); do printf 'body { --n: %d }\\n' $i > assets/$((i % 10))/style-$i.css; done && echo '<!doctype html><h1>version RUN</h1>' > index.html && find . -type f | wc -l`,
      timeout: 120,
    })
    console.log(`site: ${made.stdout.trim()} files in the sandbox's /workspace`)

    const publishMs: number[] = []
    const firstByteMs: number[] = []
    let deploymentId = ''
    let host = ''
    const versions: any[] = []
    for (let run = 1; run <= RUNS; run++) {
      await api('POST', `/sandboxes/${sandbox.id}/exec`, { cmd: `sed -i 's/version [A-Z0-9]*/version ${run}/' /workspace/index.html` })
      const started = performance.now()
      const version = await api('POST', '/publish?wait=true', { name: 'publish-bench', sandbox_id: sandbox.id, kind: 'auto' })
      const ready = performance.now()
      if (version.status !== 'ready') throw new Error(`publish ${run} ended ${version.status}: ${version.error}`)
      deploymentId = version.deployment_id
      host = new URL(version.url ?? (await api('GET', `/deployments/${deploymentId}`)).url).host
      let body = await live(host)
      while (!body.includes(`version ${run}<`)) {
        await sleep(5)
        body = await live(host)
      }
      publishMs.push(ready - started)
      firstByteMs.push(performance.now() - started)
      versions.push(version)
    }
    line('publish ready (snapshot, plan, release)', publishMs)
    line('publish → first byte of it served', firstByteMs)

    const answerMs: number[] = []
    const servedMs: number[] = []
    for (let i = 0; i < 10; i++) {
      const to = versions[i % 2 === 0 ? 0 : RUNS - 1]
      const started = performance.now()
      await api('POST', `/deployments/${deploymentId}/rollback`, { version_id: to.id })
      answerMs.push(performance.now() - started)
      const body = await live(host)
      servedMs.push(performance.now() - started)
      if (!body.includes(`version ${to.version_number}<`)) throw new Error(`after rolling back to ${to.version_number} the edge served: ${body}`)
    }
    line('rollback: API answer (in process)', answerMs)
    line('rollback: first request served by it', servedMs)

    // Load while the route flips back and forth.
    const loaded = wrk({ url: `http://127.0.0.1:${edgePort}/`, host, seconds: 12, threads: 2, connections: 32 })
    await sleep(1000)
    for (let i = 0; i < ROLLBACKS; i++) {
      await api('POST', `/deployments/${deploymentId}/rollback`, { version_id: versions[i % 2 === 0 ? 0 : RUNS - 1].id })
      await sleep(400)
    }
    const load = await loaded
    console.log(`under load (wrk -c32, 12 s) with ${ROLLBACKS} rollbacks: ${load.requests} requests, ${load.errors} failed (non-2xx and socket errors)`)
    console.log('\nBudgets: publish ≤ 3 s, rollback answer ≤ 50 ms, zero failed requests.')
  } finally {
    await t.close()
  }
}

await main()
