// The nextjs template's own app, published unchanged from a new nextjs sandbox, on the
// real Docker Engine through the HTTP API and the edge:
//
//   deploy        POST /publish?wait=true (what `miosa deploy --sandbox` calls) until the
//                 first request the edge serves from it. Cold: the first publish (the app's
//                 build cache is empty: npm install and next build run); warm: page.jsx changed.
//   release bytes the release image's total size, and what it adds to the machine's disk:
//                 its unique layers (`docker system df -v`: not shared with any other image,
//                 the runtime base included), beside the runtime base's own size.
//
//   npx tsx bench/nextjs.ts
//
// Budget (issue 13): ≤ 150 MB added, ≤ 350 MB total.

import { request } from 'node:http'
import { run } from '../src/runtime/processes.js'
import { startTestPlatform } from '../test/helpers/platform.js'

const WARM_RUNS = 2
const MB = 1e6

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function get(host: string, port: number, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(res.statusCode === 200 ? body : ''))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** Docker's human sizes (decimal units) in bytes. */
function bytes(human: string): number {
  const match = /^([\d.]+)\s*(B|kB|KB|MB|GB|TB)$/.exec(human.trim())
  if (match === null) throw new Error(`not a size: ${human}`)
  const unit = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[match[2] as 'B']
  return Number(match[1]) * unit
}

/** Total and unique (not shared with any other image) bytes of each image, by id. */
async function imageSizes(): Promise<Map<string, { size: number; unique: number }>> {
  const out = await run('docker', ['system', 'df', '-v', '--format', '{{json .Images}}'])
  const images = JSON.parse(out) as { ID: string; Size: string; UniqueSize: string }[]
  return new Map(images.map((i) => [i.ID.replace(/^sha256:/, ''), { size: bytes(i.Size), unique: bytes(i.UniqueSize) }]))
}

async function main(): Promise<void> {
  const t = await startTestPlatform({ instanceReconcileIntervalMs: 250 })
  const edgePort = Number(new URL(t.edgeUrl).port)
  try {
    const org = await t.newOrganization('Next.js Bench Org')
    const api = async (method: string, path: string, body?: unknown): Promise<any> => {
      const res = await t.call(method, `/api/v1${path}`, { key: org.key, body })
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`)
      return res.json
    }
    const write = async (sandboxId: string, path: string, content: string) => {
      const res = await t.call('PUT', `/api/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(path)}`, { key: org.key, rawBody: content, headers: { 'content-type': 'application/octet-stream' } })
      if (res.status !== 200) throw new Error(`write ${path}: ${res.status} ${res.text}`)
    }
    const read = async (sandboxId: string, path: string): Promise<string> => {
      const res = await t.call('GET', `/api/v1/sandboxes/${sandboxId}/files?path=${encodeURIComponent(path)}`, { key: org.key })
      if (res.status !== 200) throw new Error(`read ${path}: ${res.status} ${res.text}`)
      return res.text
    }

    const sandbox = await api('POST', '/sandboxes?wait=true', { template: 'nextjs', name: 'nextjs-bench', timeout: '1h' })
    const deployment = await api('POST', '/deployments', { name: 'nextjs-bench', health_check: { interval_seconds: 0.25 } })
    const host = new URL(deployment.url).host
    const page = await read(sandbox.id, '/workspace/app/page.jsx')

    /** Publishes what the sandbox holds; ms until the edge serves a page containing `expected`. */
    const deploy = async (expected: string): Promise<{ ms: number; version: any }> => {
      const started = performance.now()
      const version = await api('POST', `/deployments/${deployment.id}/publish?wait=true`, { sandbox_id: sandbox.id })
      if (version.status !== 'ready') throw new Error(`publish ended ${version.status}: ${version.error}`)
      while (!(await get('127.0.0.1', edgePort, { host }).catch(() => '')).includes(expected)) await sleep(10)
      return { ms: performance.now() - started, version }
    }

    const expected = /<h1>([^<]+)<\/h1>/.exec(page)?.[1] ?? ''
    const cold = await deploy(expected)
    console.log(`deploy → first request served, the template's app as it is (cold build cache): ${(cold.ms / 1000).toFixed(1)} s`)
    const digest = cold.version.release_sha256 as string
    const sizes = await imageSizes()
    const release = sizes.get(digest)
    if (release === undefined) throw new Error(`release image ${digest} not found`)
    const inspected = JSON.parse(await run('docker', ['image', 'inspect', `sha256:${digest}`])) as { Config: { Cmd: string[] } }[]
    const runtimeImage = (await run('docker', ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}', 'miosa/runtime-node'])).trim().split('\n')[0]?.split(' ')
    const base = runtimeImage?.[1] === undefined ? undefined : [...sizes.entries()].find(([id]) => id.startsWith(runtimeImage[1] ?? ''))?.[1]
    console.log(`release image of the template's app: ${(release.size / MB).toFixed(0)} MB total, ${(release.unique / MB).toFixed(0)} MB of unique layers added to the disk (CMD ${JSON.stringify(inspected[0]?.Config.Cmd)})`)
    if (base !== undefined) console.log(`  its runtime base ${runtimeImage?.[0] ?? ''}: ${(base.size / MB).toFixed(0)} MB, shared by every Node.js release`)
    const warm: number[] = []
    for (let i = 1; i <= WARM_RUNS; i++) {
      const marker = `warm edit ${i} ${Date.now()}`
      await write(sandbox.id, '/workspace/app/page.jsx', `${page}\n// ${marker}\n`.replace(expected, `${expected} ${i}`))
      warm.push((await deploy(`${expected} ${i}`)).ms)
    }
    warm.sort((a, b) => a - b)
    console.log(`deploy → first request served, page.jsx changed (warm build cache): median ${(warm[Math.floor(warm.length / 2)]! / 1000).toFixed(1)} s of ${warm.length}`)

    console.log('\nBudget: ≤ 150 MB added, ≤ 350 MB total (was about 1.2 GB).')
  } finally {
    await t.close()
  }
}

await main()
