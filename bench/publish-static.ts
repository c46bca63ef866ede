// Static serving throughput: the same extracted release (a generated 1,000-file site with
// a 2.7 KB index.html) served by the platform's edge (Host routing, app lookup cache,
// static-server) and by nginx (Debian's nginx-light: sendfile, open_file_cache,
// access_log off). wrk -t2 -c64, interleaved rounds, medians, ratios.
// Budget (issue 5): edge ≥ 0.7× nginx req/s. The edge is one Node process, so the budget
// compares it with one nginx worker; nginx with `worker_processes auto` is shown as well.
//
//   npx tsx bench/publish-static.ts      (needs wrk and nginx: `apt-get install wrk nginx-light`; scripts/bench installs them)
//   BENCH_STATIC_SECONDS=10 BENCH_STATIC_ROUNDS=5 BENCH_STATIC_CONNECTIONS=128 npx tsx bench/publish-static.ts

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes, createHash } from 'node:crypto'
import { once } from 'node:events'
import { request } from 'node:http'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { create as createTar } from 'tar'
import { FsBlobStore } from '../src/blobs/fs/fs-blob-store.js'
import { MiosaError } from '../src/core/errors.js'
import type { AppSite, EdgeBackend } from '../src/edge/edge-backend.js'
import { createEdgeServer } from '../src/edge/edge-server.js'
import { createReleaseFiles } from '../src/edge/release-files.js'
import { cpus, freePort, median, onPath, startPeer, wrk } from './lib/load.js'

const SECONDS = Number(process.env.BENCH_STATIC_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_STATIC_ROUNDS ?? 3)
const CONNECTIONS = Number(process.env.BENCH_STATIC_CONNECTIONS ?? 64)
const THREADS = 2
const HOST = 'site.bench.localhost'
const FILES = 1000

interface Result {
  rps: number
  p50: number
  p99: number
  errors: number
}

async function writeSite(dir: string): Promise<{ asset: string }> {
  const files = new Map<string, Buffer | string>()
  const hash = (n: number): string => createHash('sha256').update(String(n)).digest('base64url').slice(0, 8)
  let asset = ''
  for (let i = 0; files.size < FILES - 1; i++) {
    const kind = i % 4
    if (kind === 0) {
      const name = `assets/chunk-${i}-${hash(i)}.js`
      asset ||= name
      files.set(name, `export function f${i}(x) { return x * ${i} }\n`.repeat(40 + (i % 80)))
    } else if (kind === 1) files.set(`assets/style-${i}-${hash(i)}.css`, `.c${i} { color: #${(i * 4099).toString(16).padStart(6, '0').slice(0, 6)}; margin: ${i % 16}px }\n`.repeat(20 + (i % 40)))
    else if (kind === 2) files.set(`images/img-${i}.png`, randomBytes(1024 + (i % 8) * 512))
    else files.set(`pages/page-${i}/index.html`, `<!doctype html><title>Page ${i}</title><p>${'Lorem ipsum dolor sit amet. '.repeat(30)}</p>\n`)
  }
  const head = `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>Smile Dental</title>\n<link rel="stylesheet" href="/assets/style-1-${hash(1)}.css">\n<script type="module" src="/${asset}"></script>\n</head>\n<body>\n<div id="root">\n`
  const tail = '</div>\n</body>\n</html>\n'
  let body = ''
  for (let i = 0; head.length + body.length + tail.length < 2700 - 70; i++) body += `<p class="c${i}">Book your appointment online, any day of the week: ${i}.</p>\n`
  files.set('index.html', head + body + tail)
  for (const [path, content] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), content)
  }
  return { asset }
}

async function startNginx(root: string, dir: string, workers: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const prefix = join(dir, `nginx-${workers}`)
  await mkdir(prefix, { recursive: true })
  const config = `
worker_processes ${workers};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  open_file_cache_valid 60s;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { try_files $uri $uri/ =404; }
  }
}
`
  const file = join(prefix, 'nginx.conf')
  await writeFile(file, config)
  return startPeer('nginx', 'nginx', ['-p', prefix, '-c', file, '-e', join(prefix, 'error.log')], port)
}

async function measure(url: string): Promise<Result> {
  const load = { url, threads: THREADS, connections: CONNECTIONS, host: HOST }
  await wrk({ ...load, seconds: 1 }) // warm-up: JIT, caches, keep-alive
  return wrk({ ...load, seconds: SECONDS })
}

/** One request (fetch would not send our Host header). */
function get(port: number, path: string): Promise<{ status: number; length: number }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host: HOST } }, (res) => {
      let length = 0
      res.on('data', (chunk: Buffer) => (length += chunk.length))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length }))
      res.on('error', reject)
    })
      .on('error', reject)
      .end()
  })
}

async function main(): Promise<void> {
  const missing = ['wrk', 'nginx'].filter((command) => !onPath(command) && !existsSync(`/usr/sbin/${command}`))
  if (missing.length > 0) {
    console.error(`bench/publish-static needs ${missing.join(' and ')} (Debian: apt-get install wrk nginx-light; scripts/bench installs both).`)
    process.exitCode = 1
    return
  }
  if (!onPath('nginx')) process.env.PATH = `${process.env.PATH ?? ''}${delimiter}/usr/sbin`
  const dir = await mkdtemp(join(tmpdir(), 'miosa-bench-static-'))
  await chmod(dir, 0o755) // nginx's workers may run as another user
  const children: ChildProcess[] = []
  try {
    const { asset } = await writeSite(join(dir, 'src'))
    const chunks: Buffer[] = []
    for await (const chunk of createTar({ cwd: join(dir, 'src'), gzip: true, portable: true }, ['.']) as AsyncIterable<Buffer>) chunks.push(chunk)
    const blobs = new FsBlobStore(join(dir, 'blobs'))
    const { sha256, size } = await blobs.put(Buffer.concat(chunks))
    const releaseFiles = createReleaseFiles({ blobs, dir: join(dir, 'releases') })
    const started = performance.now()
    const root = await releaseFiles(sha256)
    const extractMs = performance.now() - started
    const count = (await readdir(root, { recursive: true })).length
    console.log(`site: ${FILES} files, release ${(size / 1024).toFixed(0)} KiB tar.gz; extracted + precompressed in ${extractMs.toFixed(0)} ms (${count} entries with .gz/.br siblings and directories)`)

    // The edge in its own process, as in production (and as nginx is): this process only runs wrk.
    const edgeChild = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--edge', join(dir, 'blobs'), join(dir, 'releases'), sha256], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(edgeChild)
    const edgePort = await new Promise<number>((resolve, reject) => {
      let out = ''
      edgeChild.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const match = /listening (\d+)/.exec(out)
        if (match !== null) resolve(Number(match[1]))
      })
      edgeChild.once('exit', (code) => reject(new Error(`the edge exited (${code}) before listening`)))
    })
    const nginx1 = await startNginx(root, dir, '1')
    const nginxAuto = await startNginx(root, dir, 'auto')
    children.push(nginx1.child, nginxAuto.child)
    for (const [name, port] of [['edge', edgePort], ['nginx', nginx1.port]] as const) {
      for (const path of ['/', `/${asset}`]) {
        const r = await get(port, path)
        if (r.status !== 200) throw new Error(`${name} ${path}: ${r.status}`)
      }
    }
    const index = await get(edgePort, '/')
    console.log(`wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s (1 s warm-up each), ${ROUNDS} interleaved rounds, medians; ${cpus()} CPUs, Node ${process.version}, ${nginxVersion()}`)
    const paths: [string, string][] = [
      [`/ (index.html, ${index.length} B)`, '/'],
      [`/${asset} (hashed asset)`, `/${asset}`],
    ]
    const targets: [string, number][] = [
      ['miosa edge', edgePort],
      ['nginx (1 worker)', nginx1.port],
      ['nginx (auto workers)', nginxAuto.port],
    ]
    let verdict = true
    for (const [label, path] of paths) {
      const runs: Result[][] = targets.map(() => [])
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, [, port]] of targets.entries()) runs[i]!.push(await measure(`http://127.0.0.1:${port}${path}`))
      }
      console.log('')
      console.log(label)
      console.log(`${'server'.padEnd(24)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(8)}   req/s per round`)
      const medians = runs.map((r) => ({
        rps: median(r.map((x) => x.rps)),
        p50: median(r.map((x) => x.p50)),
        p99: median(r.map((x) => x.p99)),
        errors: r.reduce((sum, x) => sum + x.errors, 0),
        each: r.map((x) => x.rps.toFixed(0)).join(' / '),
      }))
      for (const [i, [name]] of targets.entries()) {
        const m = medians[i]!
        console.log(`${name.padEnd(24)}${m.rps.toFixed(0).padStart(10)}${m.p50.toFixed(2).padStart(10)}${m.p99.toFixed(2).padStart(10)}${String(m.errors).padStart(8)}   ${m.each}`)
      }
      const [miosa, one, auto] = [medians[0]!, medians[1]!, medians[2]!]
      const ratio = miosa.rps / one.rps
      console.log(`edge / nginx (1 worker)     req/s ${ratio.toFixed(2)}×   p99 ${(miosa.p99 / one.p99).toFixed(2)}×`)
      console.log(`edge / nginx (auto workers) req/s ${(miosa.rps / auto.rps).toFixed(2)}×`)
      if (ratio < 0.7) verdict = false
      if (medians.some((m) => m.errors > 0)) console.log('warning: some requests failed (see errors column)')
    }
    console.log('')
    console.log(`budget: edge ≥ 0.7× nginx (1 worker) req/s: ${verdict ? 'met' : 'NOT met'}`)
  } finally {
    for (const child of children) child.kill(child.spawnfile === 'nginx' ? 'SIGQUIT' : 'SIGTERM')
    await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)))
    spawnSync('chmod', ['-R', 'u+w', dir]) // the release is read-only
    await rm(dir, { recursive: true, force: true })
  }
}

function nginxVersion(): string {
  return spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')
}

/** `--edge <blobs> <releases> <sha256>`: the edge alone, serving the release as `site.bench.localhost`. */
async function serveEdge(blobsDir: string, releasesDir: string, sha256: string): Promise<void> {
  const releaseFiles = createReleaseFiles({ blobs: new FsBlobStore(blobsDir), dir: releasesDir })
  const app: AppSite = { deploymentId: 'dpl_bench', workspaceId: 'wsp_bench', environment: 'production', versionId: 'ver_bench', release: { sha256, kind: 'static' }, spaFallback: false }
  const backend: EdgeBackend = {
    resolve: async () => undefined,
    resolveApp: async (route) => (route.deploymentSlug === 'site' && route.workspaceSlug === 'bench' ? app : undefined),
    releaseFiles,
    appTargets: () => [],
    exchange: async () => ({ ok: false, status: 401, message: 'no' }),
    admits: async () => false,
    upstream: async () => {
      throw new MiosaError('not_found', 'no sandboxes here')
    },
    touch: () => {},
    hold: () => () => {},
    branding: async () => undefined,
  }
  const server = createEdgeServer({ logger: pino({ level: 'warn' }), baseDomain: 'localhost', backend })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  process.once('SIGTERM', () => process.exit(0))
  console.log(`listening ${(server.address() as AddressInfo).port}`)
}

const edgeFlag = process.argv.indexOf('--edge')
if (edgeFlag === -1) await main()
else await serveEdge(process.argv[edgeFlag + 1] as string, process.argv[edgeFlag + 2] as string, process.argv[edgeFlag + 3] as string)
