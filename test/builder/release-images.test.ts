import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import Docker from 'dockerode'
import pino from 'pino'
import { Parser, create } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.js'
import type { BuildJob, BuildPlan, Release } from '../../src/builder/builder.js'
import { ContainerBuilder } from '../../src/builder/container-builder.js'
import { randomBase32 } from '../../src/core/ids.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import { INSTANCE_PORT } from '../../src/runtime/instance-driver.js'
import { run } from '../../src/runtime/processes.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'

// Release images against the real Docker Engine: builds hold their workspace's network
// while the reconciler prunes, a build-time secret reaches the build but no image, layer,
// history or archive, and a release carries the app and its runtime, not the toolchain.

const ORG = `org_${randomBase32(20)}`
const platformId = `plt_${randomBase32(20)}`
const docker = new Docker()
let dir: string
let driver: DockerDriver
let blobs: FsBlobStore
let builder: ContainerBuilder

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-release-images-test-'))
  driver = testDockerDriver(platformId, docker)
  blobs = new FsBlobStore(join(dir, 'blobs'))
  builder = new ContainerBuilder({ runtime: driver, blobs, images: driver.images, logger: pino({ level: 'silent' }), spoolDir: join(dir, 'spool') })
})

afterAll(async () => {
  await driver.close()
  await removePlatformResources(platformId, driver)
  await rm(dir, { recursive: true, force: true })
})

/** Builds the files in workspace `workspaceId` with build-time `env`; the release (archived as publishing does), its plan and its log. */
async function build(files: Record<string, string>, o: { env?: Record<string, string>; workspaceId?: string } = {}): Promise<{ release: Release; plan: BuildPlan; logs: string[] }> {
  const root = await mkdtemp(join(dir, 'src-'))
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), text)
  }
  const tar = Readable.from(create({ cwd: root, gzip: true }, [...new Set(Object.keys(files).map((f) => f.split('/')[0] ?? f))]) as AsyncIterable<Buffer>)
  const source = await builder.captureUpload(tar)
  const plan = await builder.plan(source, 'auto', {})
  const logs: string[] = []
  const job: BuildJob = {
    organizationId: ORG,
    workspaceId: o.workspaceId ?? `ws_${randomBase32(20)}`,
    versionId: `ver_${randomBase32(20)}`,
    source,
    plan,
    timeoutMs: 400_000,
    env: o.env,
    onLog: (line) => logs.push(line),
  }
  try {
    const built = await builder.build(job)
    const archive = await builder.archiveRelease(built.sha256)
    return { release: { ...built, archive_sha256: archive.sha256 }, plan, logs }
  } catch (error) {
    console.log(logs.join('\n'))
    throw error
  }
}

/** Runs the image as an instance would (PORT=8080, the plan's start); answers GET `path` once it serves. */
async function serve(digest: string, cmd: string[] | null, path = '/'): Promise<string> {
  const container = await docker.createContainer({
    Image: `sha256:${digest}`,
    ...(cmd === null ? {} : { Cmd: cmd }),
    Env: [`PORT=${INSTANCE_PORT}`],
    Labels: { 'miosa.platform': platformId, 'miosa.managed': 'true' },
    HostConfig: { Init: true },
  })
  await container.start()
  const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress
  const deadline = Date.now() + 60_000
  let last: unknown
  try {
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`http://${ip}:${INSTANCE_PORT}${path}`, { signal: AbortSignal.timeout(2000) })
        return await response.text()
      } catch (error) {
        last = error
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    const output = await container.logs({ stdout: true, stderr: true })
    throw new Error(`the app never answered (${String(last)}): ${output.toString()}`)
  } finally {
    await container.remove({ force: true })
  }
}

/** Every file of a tar stream, gunzipped when gzipped; nested tars (layers) are scanned as their bytes. */
async function tarContains(stream: NodeJS.ReadableStream, needle: string): Promise<string[]> {
  const found: string[] = []
  const parser = new Parser({
    onReadEntry: (entry) => {
      const chunks: Buffer[] = []
      entry.on('data', (chunk: Buffer) => chunks.push(chunk))
      entry.on('end', () => {
        let bytes = Buffer.concat(chunks)
        if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes)
        if (bytes.includes(needle)) found.push(entry.path)
      })
    },
  })
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject)
    parser.on('error', reject)
    parser.on('end', resolve)
    stream.pipe(parser)
  })
  return found
}

/** Runs a shell command line in the image (as root); its stdout. */
async function inImage(digest: string, script: string): Promise<string> {
  return run('docker', ['run', '--rm', '--user', 'root', '--entrypoint', 'sh', `sha256:${digest}`, '-c', script])
}

describe('release images', () => {
  it('builds succeed while the reconciler prunes networks every 100 ms (a build holds its workspace network)', async () => {
    const workspaceId = `ws_${randomBase32(20)}`
    let pruning = true
    let prunes = 0
    const pruner = (async () => {
      while (pruning) {
        await driver.releaseUnused(new Set())
        prunes++
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()
    try {
      // Several RUN steps: between two of them no container holds the network.
      const steps = Array.from({ length: 6 }, (_, i) => `RUN echo step ${i} && sleep 0.3`).join('\n')
      const builds = await Promise.all(
        [1, 2, 3].map((n) => build({ Dockerfile: `FROM miosa/template-node\nRUN echo ${randomBase32(12)} build ${n}\n${steps}\nCMD ["node", "-e", "1"]\n` }, { workspaceId })),
      )
      for (const b of builds) expect(b.release.sha256).toMatch(/^[0-9a-f]{64}$/)
    } finally {
      pruning = false
      await pruner
    }
    expect(prunes).toBeGreaterThan(10)
  }, 900_000)

  it('a build-time secret reaches the build but no history, layer, label, archive or log', async () => {
    const secret = `s3cr3t-${randomBase32(24)}`
    const hash = createHash('sha256').update(secret).digest('hex')
    const { release, plan, logs } = await build(
      {
        'package.json': JSON.stringify({ name: 'secret-build', private: true, scripts: { build: 'node build.js', start: 'node server.js' } }),
        'build.js': "require('node:fs').writeFileSync('hash.txt', require('node:crypto').createHash('sha256').update(process.env.BUILD_SECRET ?? 'missing').digest('hex'))\nconsole.log('hashed the secret')\n",
        'server.js': "const text = require('node:fs').readFileSync('hash.txt', 'utf8')\nrequire('node:http').createServer((q, s) => s.end(text)).listen(Number(process.env.PORT), '0.0.0.0')\n",
      },
      { env: { BUILD_SECRET: secret } },
    )
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'node', build: ['npm', 'run', 'build'] })
    // The build saw it: the app serves its hash.
    expect(await serve(release.sha256, plan.start)).toBe(hash)
    expect(logs).toContain('hashed the secret')

    const history = await run('docker', ['history', '--no-trunc', '--format', '{{.CreatedBy}}', `sha256:${release.sha256}`])
    expect(history).not.toContain(secret)
    expect(history).not.toContain('BUILD_SECRET')
    expect(JSON.stringify(await docker.getImage(`sha256:${release.sha256}`).inspect())).not.toContain(secret)
    expect(await tarContains(await docker.getImage(`sha256:${release.sha256}`).get(), secret)).toEqual([])
    expect(await tarContains(await blobs.get(release.archive_sha256 ?? ''), secret)).toEqual([])
    expect(logs.join('\n')).not.toContain(secret)
  }, 600_000)

  it('a Python app with a build-time value: its venv comes out of the builder and serves on the slim runtime', async () => {
    const { release, plan } = await build(
      {
        'requirements.txt': 'flask\ngunicorn\n',
        'app.py': "import os\nfrom flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return 'hello from flask'\n",
        Procfile: 'web: gunicorn --bind 0.0.0.0:$PORT app:app\n',
      },
      { env: { SOME_TOKEN: `tok-${randomBase32(16)}` } },
    )
    expect(await serve(release.sha256, plan.start)).toBe('hello from flask')
    expect(await inImage(release.sha256, 'command -v gcc git pip3 || true')).toBe('')
  }, 600_000)

  it('an Express release carries Node and its production dependencies, no compiler, git or dev dependency', async () => {
    const { release, plan } = await build({
      'package.json': JSON.stringify({ name: 'slim-express', private: true, scripts: { start: 'node server.js' }, dependencies: { express: '^4.21.0' }, devDependencies: { 'is-number': '^7.0.0' } }),
      'server.js': "const app = require('express')()\napp.get('/', (req, res) => res.send('hello from express'))\napp.listen(Number(process.env.PORT), '0.0.0.0')\n",
    })
    expect(await serve(release.sha256, plan.start)).toBe('hello from express')
    expect(await inImage(release.sha256, 'command -v gcc cc make git python3 || true')).toBe('')
    expect(await inImage(release.sha256, 'ls node_modules')).toContain('express')
    expect(await inImage(release.sha256, 'ls node_modules')).not.toContain('is-number')
    const size = (await docker.getImage(`sha256:${release.sha256}`).inspect()).Size
    console.log(`Express release image: ${(size / 1e6).toFixed(0)} MB`)
    expect(size).toBeLessThan(350e6)
  }, 600_000)

  it("a Next.js app with output: 'standalone' (the nextjs template's config) is released as its standalone server, under 350 MB", async () => {
    const { release, plan } = await build({
      'package.json': JSON.stringify({ name: 'hello-standalone', private: true, scripts: { build: 'next build', start: 'next start -p ${PORT:-3000}' }, dependencies: { next: '15.5.29', react: '19.3.1', 'react-dom': '19.3.1' } }),
      'next.config.mjs': "export default { output: 'standalone' }\n",
      'app/layout.jsx': 'export default function RootLayout({ children }) {\n  return <html><body>{children}</body></html>\n}\n',
      'app/page.jsx': "export const dynamic = 'force-dynamic'\nexport default function Page() {\n  return <p>hello from standalone next</p>\n}\n",
      'public/robots.txt': 'User-agent: *\n',
    })
    expect(plan.start).toEqual(['node', '.next/standalone/server.js'])
    expect(await serve(release.sha256, plan.start)).toContain('hello from standalone next')
    expect(await serve(release.sha256, plan.start, '/robots.txt')).toBe('User-agent: *\n')
    expect(await inImage(release.sha256, 'ls .next/standalone/.next/static | head -1; command -v gcc git || true')).not.toBe('')
    expect(await inImage(release.sha256, 'command -v gcc git || true')).toBe('')
    const size = (await docker.getImage(`sha256:${release.sha256}`).inspect()).Size
    console.log(`standalone Next.js release image: ${(size / 1e6).toFixed(0)} MB`)
    expect(size).toBeLessThan(350e6)
  }, 600_000)
})
