import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import Docker from 'dockerode'
import pino from 'pino'
import { create } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.js'
import type { BuildJob, BuildPlan, Release, SourceSnapshot } from '../../src/builder/builder.js'
import { ContainerBuilder } from '../../src/builder/container-builder.js'
import { randomBase32 } from '../../src/core/ids.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import { INSTANCE_PORT } from '../../src/runtime/instance-driver.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { expectMiosaError } from '../helpers/errors.js'

// Dynamic releases against the real Docker Engine: each app is built into an image, the
// image runs in a container started here (default bridge, PORT=8080) and answers HTTP.
// npm reaches the registry through this machine's proxy; Python apps get no index at all.

const ORG = `org_${randomBase32(20)}`
const WS = `ws_${randomBase32(20)}`
const platformId = `plt_${randomBase32(20)}`
const docker = new Docker()
let dir: string
let driver: DockerDriver
let blobs: FsBlobStore
let builder: ContainerBuilder

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-dynamic-build-test-'))
  driver = testDockerDriver(platformId, docker)
  blobs = new FsBlobStore(join(dir, 'blobs'))
  builder = new ContainerBuilder({ runtime: driver, blobs, images: driver.images, logger: pino({ level: 'silent' }), spoolDir: join(dir, 'spool') })
})

afterAll(async () => {
  await driver.close()
  // Containers run here and release images carry the platform's label: both go.
  await removePlatformResources(platformId, driver)
  await rm(dir, { recursive: true, force: true })
})

async function upload(files: Record<string, string>): Promise<SourceSnapshot> {
  const root = await mkdtemp(join(dir, 'src-'))
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), text)
  }
  const tar = Readable.from(create({ cwd: root, gzip: true }, [...new Set(Object.keys(files).map((f) => f.split('/')[0] ?? f))]) as AsyncIterable<Buffer>)
  return builder.captureUpload(tar)
}

function job(source: SourceSnapshot, plan: BuildPlan, logs: string[], timeoutMs = 300_000): BuildJob {
  return { organizationId: ORG, workspaceId: WS, versionId: `ver_${randomBase32(20)}`, source, plan, timeoutMs, onLog: (line) => logs.push(line) }
}

/** Builds the files; answers the release, the plan and the build's log. */
/** A build, then (for a dynamic release) its image exported as an OCI archive, as publishing does once the version is live. */
async function build(files: Record<string, string>): Promise<{ release: Release; plan: BuildPlan; logs: string[]; ms: number; imageMs: number }> {
  const source = await upload(files)
  const plan = await builder.plan(source, 'auto', {})
  const logs: string[] = []
  const started = performance.now()
  let imageMs = 0
  try {
    const built = await builder.build({
      ...job(source, plan, logs),
      onLog: (line) => {
        if (process.env.MIOSA_TRACE_BUILD !== undefined) console.log(`${(performance.now() - started).toFixed(0).padStart(6)} ${line.slice(0, 100)}`)
        logs.push(line)
      },
    })
    imageMs = performance.now() - started
    const archive = built.kind === 'dynamic' ? await builder.archiveRelease(built.sha256) : undefined
    const release = archive === undefined ? built : { ...built, archive_sha256: archive.sha256 }
    return { release, plan, logs, ms: performance.now() - started, imageMs }
  } catch (error) {
    console.log(logs.join('\n'))
    throw error
  }
}

/** Runs the image on the default bridge as an instance would (PORT=8080, plan.start or the image's CMD); answers GET / once it serves. */
async function serve(digest: string, cmd?: string[] | null): Promise<string> {
  const container = await docker.createContainer({
    Image: `sha256:${digest}`,
    ...(cmd === undefined || cmd === null ? {} : { Cmd: cmd }),
    Env: [`PORT=${INSTANCE_PORT}`],
    Labels: { 'miosa.platform': platformId, 'miosa.managed': 'true' },
    HostConfig: { Init: true },
  })
  await container.start()
  const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress
  const deadline = Date.now() + 30_000
  let last: unknown
  try {
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`http://${ip}:${INSTANCE_PORT}/`, { signal: AbortSignal.timeout(2000) })
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

/** The builder's RUN containers running `marker` (the daemon removes them once the build is cancelled). */
async function buildContainersLeft(marker: string): Promise<number> {
  let left = 0
  for (let i = 0; i < 50; i++) {
    left = (await docker.listContainers({ all: true })).filter((c) => c.Command.includes(marker)).length
    if (left === 0) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return left
}

const EXPRESS = {
  // Salted: the build stage's cache outlives a run (it is no parent of the release image), and the first build here must be cold.
  'package.json': JSON.stringify({ name: 'hello-express', description: `salt ${randomBase32(12)}`, private: true, scripts: { start: 'node server.js' }, dependencies: { express: '^4.21.0' } }),
  'server.js': "const app = require('express')()\napp.get('/', (req, res) => res.send('hello from express'))\napp.listen(Number(process.env.PORT), '0.0.0.0')\n",
}

let express: Release

describe('dynamic builds', () => {
  it('an Express app builds into an image that serves on PORT 8080, stored as an OCI archive', async () => {
    const { release, plan, logs, ms, imageMs } = await build(EXPRESS)
    console.log(`Express build (cold: npm install through the proxy): ${ms.toFixed(0)} ms, of which the image build ${imageMs.toFixed(0)} ms, the export ${(ms - imageMs).toFixed(0)} ms`)
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'node', install: ['npm', 'install'], start: ['npm', 'start'], release: null })
    expect(release).toMatchObject({ kind: 'dynamic' })
    expect(release.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(release.size_bytes).toBeGreaterThan(0)
    expect(await blobs.stat(release.archive_sha256 ?? '')).toBeDefined()
    expect(await driver.images.has(release.sha256)).toBe(true)
    // Every line of the docker build reached the log, npm's among them.
    expect(logs.some((l) => /^Step \d+\/\d+ : RUN/.test(l))).toBe(true)
    expect(logs.some((l) => /added \d+ packages?/.test(l))).toBe(true)
    const image = await docker.getImage(`sha256:${release.sha256}`).inspect()
    expect(image.RepoTags).toContain(`miosa-release:${release.sha256}`)
    expect(image.Config.Labels).toMatchObject({ 'miosa.managed': 'true', 'miosa.platform': platformId })
    expect(image.Config.Env).toEqual(expect.arrayContaining(['PORT=8080', 'NODE_ENV=production']))
    expect(Object.keys(image.Config.ExposedPorts ?? {})).toEqual(['8080/tcp'])
    expect(image.Config.User).toBe('miosa')
    expect(await serve(release.sha256)).toBe('hello from express')
    express = release
  }, 400_000)

  it('a second build of the unchanged app reuses the npm install layer', async () => {
    const { release, logs, ms, imageMs } = await build(EXPRESS)
    console.log(`Express build (warm: cached layers): ${ms.toFixed(0)} ms, of which the image build ${imageMs.toFixed(0)} ms, the export ${(ms - imageMs).toFixed(0)} ms`)
    expect(logs.some((l) => l.includes('Using cache'))).toBe(true)
    expect(logs.some((l) => /added \d+ packages?/.test(l))).toBe(false)
    // Every layer from cache: the very same image.
    expect(release.sha256).toBe(express.sha256)
    // …whose archive is the same blob.
    expect(release.archive_sha256).toBe(express.archive_sha256)
  }, 400_000)

  it('export, remove, load from the blob store: the same digest, and it runs', async () => {
    await docker.getImage(`sha256:${express.sha256}`).remove({ force: true })
    expect(await driver.images.has(express.sha256)).toBe(false)
    const digest = await driver.images.load(await blobs.get(express.archive_sha256 ?? ''))
    expect(digest).toBe(express.sha256)
    expect(await driver.images.has(digest)).toBe(true)
    expect((await docker.getImage(`sha256:${digest}`).inspect()).RepoTags).toContain(`miosa-release:${digest}`)
    expect(await serve(digest)).toBe('hello from express')
  }, 120_000)

  it('a Next.js app is built (npm run build) and served by next start', async () => {
    const { release, plan, logs } = await build({
      'package.json': JSON.stringify({ name: 'hello-next', private: true, scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '15.5.29', react: '19.3.1', 'react-dom': '19.3.1' } }),
      'app/layout.jsx': 'export default function RootLayout({ children }) {\n  return <html><body>{children}</body></html>\n}\n',
      'app/page.jsx': "export const dynamic = 'force-dynamic'\nexport default function Page() {\n  return <p>hello from next</p>\n}\n",
    })
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'node', build: ['npm', 'run', 'build'], start: ['npm', 'start'] })
    expect(logs.some((l) => /next build/.test(l))).toBe(true)
    expect(await serve(release.sha256)).toContain('hello from next')
  }, 400_000)

  it('a Flask app under gunicorn, its requirements met by Debian packages (no index)', async () => {
    const { release, plan } = await build({
      'requirements.txt': 'flask\ngunicorn\n',
      'app.py': "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return 'hello from flask'\n",
      Procfile: 'web: gunicorn --bind 0.0.0.0:$PORT app:app\n',
    })
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'python', start: ['sh', '-lc', 'gunicorn --bind 0.0.0.0:$PORT app:app'] })
    expect(await serve(release.sha256)).toBe('hello from flask')
  }, 300_000)

  it('a FastAPI app under uvicorn, detected without a Procfile (no index)', async () => {
    const { release, plan } = await build({
      'requirements.txt': 'fastapi\nuvicorn\n',
      'main.py': "from fastapi import FastAPI\nfrom fastapi.responses import PlainTextResponse\napp = FastAPI()\n\n@app.get('/', response_class=PlainTextResponse)\ndef index():\n    return 'hello from fastapi'\n",
    })
    expect(plan.start).toEqual(['sh', '-lc', 'uvicorn main:app --host 0.0.0.0 --port $PORT'])
    expect(await serve(release.sha256)).toBe('hello from fastapi')
  }, 300_000)

  it('a Dockerfile app builds FROM miosa/template-node and runs its own CMD', async () => {
    const { release, plan } = await build({
      Dockerfile: 'FROM miosa/template-node\nCOPY server.js /srv/server.js\nCMD ["node", "/srv/server.js"]\n',
      'server.js': "require('node:http').createServer((q, s) => s.end('hello from a Dockerfile')).listen(Number(process.env.PORT))\n",
    })
    expect(plan).toMatchObject({ kind: 'dynamic', detected: 'dockerfile', start: null })
    expect(await serve(release.sha256)).toBe('hello from a Dockerfile')
  }, 300_000)

  it('a failing build is an invalid error, its output logged', async () => {
    const source = await upload({ Dockerfile: 'FROM miosa/template-node\nRUN echo about to fail && false\n' })
    const plan = await builder.plan(source, 'auto', {})
    const logs: string[] = []
    const error = await expectMiosaError(builder.build(job(source, plan, logs)), 'invalid')
    expect(error.message).toMatch(/^the build failed: /)
    expect(logs).toContain('about to fail')
  }, 120_000)

  it('aborting the job stops a build', async () => {
    const source = await upload({ Dockerfile: 'FROM miosa/template-node\nRUN echo waiting && sleep 120\n' })
    const plan = await builder.plan(source, 'auto', {})
    const controller = new AbortController()
    const started = Date.now()
    const running = builder.build({
      ...job(source, plan, []),
      signal: controller.signal,
      onLog: (line) => {
        if (line === 'waiting') controller.abort()
      },
    })
    const error = await expectMiosaError(running, 'invalid')
    expect(error.message).toMatch(/cancelled/)
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(await buildContainersLeft('echo waiting')).toBe(0)
  }, 60_000)

  it('the time limit stops a build', async () => {
    const source = await upload({ Dockerfile: 'FROM miosa/template-node\nRUN echo sleeping && sleep 120\n' })
    const plan = await builder.plan(source, 'auto', {})
    const logs: string[] = []
    const started = Date.now()
    const error = await expectMiosaError(builder.build(job(source, plan, logs, 5_000)), 'invalid')
    expect(error.message).toMatch(/timed out after 5 s/)
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(logs).toContain('sleeping')
    expect(await buildContainersLeft('echo sleeping')).toBe(0)
  }, 60_000)
})
