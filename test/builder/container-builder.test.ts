import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import Docker from 'dockerode'
import pino from 'pino'
import { create } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.js'
import type { BuildJob, BuildPlan, SourceSnapshot } from '../../src/builder/builder.js'
import { ContainerBuilder } from '../../src/builder/container-builder.js'
import { indexTar } from '../../src/builder/normalized-tar.js'
import { randomBase32 } from '../../src/core/ids.js'
import type { DockerDriver } from '../../src/runtime/docker/docker-driver.js'
import type { RuntimeDriver, RuntimeRef } from '../../src/runtime/runtime-driver.js'
import { removePlatformResources } from '../helpers/docker-cleanup.js'
import { testDockerDriver } from '../helpers/docker-driver.js'
import { expectMiosaError } from '../helpers/errors.js'

// The builder against the real Docker Engine and a real filesystem blob store.

const ORG = `org_${randomBase32(20)}`
const WS = `ws_${randomBase32(20)}`
const platformId = `plt_${randomBase32(20)}`
const docker = new Docker()
let dir: string
let driver: DockerDriver
let blobs: FsBlobStore
let builder: ContainerBuilder
let sandbox: RuntimeRef
let creates = 0

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-builder-test-'))
  driver = testDockerDriver(platformId, docker)
  // Counts the containers the builder starts.
  const runtime: RuntimeDriver = Object.create(driver) as RuntimeDriver
  runtime.createSandbox = (spec, o) => {
    creates++
    return driver.createSandbox(spec, o)
  }
  blobs = new FsBlobStore(join(dir, 'blobs'))
  builder = new ContainerBuilder({ runtime, blobs, logger: pino({ level: 'silent' }), spoolDir: join(dir, 'spool') })
  sandbox = await driver.createSandbox({ sandboxId: `sbx_${randomBase32(20)}`, organizationId: ORG, workspaceId: WS, template: 'node', cpu: 1, memoryMb: 1024, pidsLimit: 512 })
})

afterAll(async () => {
  await driver.close()
  await removePlatformResources(platformId, driver)
  await rm(dir, { recursive: true, force: true })
})

async function sh(script: string): Promise<void> {
  const result = await driver.exec(sandbox, { argv: ['sh', '-c', script], cwd: '/workspace' })
  expect(result.exit_code, result.stderr).toBe(0)
}

async function write(path: string, text: string): Promise<void> {
  await driver.writeFile(sandbox, `/workspace/${path}`, Buffer.from(text))
}

async function entries(sha256: string): Promise<string[]> {
  return (await indexTar(await blobs.get(sha256), () => false)).files
}

/** A tar.gz of these files, made on this machine (as a CLI upload would be). */
async function tarball(files: Record<string, string>, mtime: Date): Promise<Readable> {
  const root = await mkdtemp(join(dir, 'upload-'))
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), text)
    await utimes(join(root, path), mtime, mtime)
  }
  return Readable.from(create({ cwd: root, gzip: true }, [...new Set(Object.keys(files).map((f) => f.split('/')[0] ?? f))]) as AsyncIterable<Buffer>)
}

function job(source: SourceSnapshot, plan: BuildPlan, logs: string[], timeoutMs = 240_000): BuildJob {
  return { organizationId: ORG, workspaceId: WS, versionId: `ver_${randomBase32(20)}`, source, plan, timeoutMs, onLog: (line) => logs.push(line) }
}

async function builderContainers(): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: ['miosa.kind=builder', `miosa.platform=${platformId}`] } })
  return list.length
}

describe('ContainerBuilder', () => {
  it('publishes a static site without a container, leaving out ignored paths; identical content, identical sha256', async () => {
    await sh('rm -rf /workspace/* /workspace/.[!.]* 2>/dev/null; mkdir -p node_modules/dep .git css .next/cache && echo x > node_modules/dep/index.js && echo ref > .git/HEAD && echo c > .next/cache/x')
    await write('index.html', '<h1>hello</h1>')
    await write('css/site.css', 'h1 { color: red }')
    await write('secret.txt', 'do not publish')
    await write('.miosaignore', 'secret.txt\n')
    // Links out of the workspace are left out; links within it are kept.
    await sh('ln -s /etc/passwd leak && ln -s ../index.html css/home.html')

    const started = performance.now()
    const source = await builder.captureSource(sandbox)
    const plan = await builder.plan(source, 'auto', {})
    const logs: string[] = []
    const release = await builder.build(job(source, plan, logs))
    const ms = performance.now() - started
    console.log(`static publish path (snapshot + plan + release): ${ms.toFixed(0)} ms`)

    expect(await entries(source.sha256)).toEqual(['.miosaignore', 'css/home.html', 'css/site.css', 'index.html'])
    expect(source.files).toBe(4)
    expect(plan).toMatchObject({ kind: 'static', detected: 'static-files', install: null, build: null, output_dir: '.' })
    expect(release).toEqual({ sha256: source.sha256, size_bytes: source.size_bytes, kind: 'static' })
    expect(creates).toBe(0)

    // The same files with other mtimes (and a changed ignored directory) make the same snapshot.
    await sh('sleep 1; touch index.html css/site.css; echo y > node_modules/dep/other.js')
    expect((await builder.captureSource(sandbox)).sha256).toBe(source.sha256)
    await write('index.html', '<h1>changed</h1>')
    expect((await builder.captureSource(sandbox)).sha256).not.toBe(source.sha256)
  })

  it('an uploaded tarball: same files, same sha256 whatever their mtimes; escaping entries refused', async () => {
    const files = { 'index.html': '<p>up</p>', 'public/app.js': 'console.log(1)', 'node_modules/x/y.js': '' }
    const a = await builder.captureUpload(await tarball(files, new Date('2020-01-01')))
    const b = await builder.captureUpload(await tarball(files, new Date('2024-06-01')))
    expect(a.sha256).toBe(b.sha256)
    expect(a.files).toBe(2)
    expect(await entries(a.sha256)).toEqual(['index.html', 'public/app.js'])

    const evil = await mkdtemp(join(dir, 'evil-'))
    await writeFile(join(evil, 'x'), 'x')
    const escaping = Readable.from(create({ cwd: evil }, ['x']) as AsyncIterable<Buffer>)
    const rewritten = Readable.from(rewriteName(escaping, 'x', '../x'))
    await expectMiosaError(builder.captureUpload(rewritten), 'invalid', 'body')
  })

  it('builds a Vite app in a builder container: the release holds index.html and hashed assets', async () => {
    await sh('rm -rf /workspace/* /workspace/.[!.]* 2>/dev/null; mkdir -p src')
    await write('package.json', JSON.stringify({ name: 'vite-app', private: true, type: 'module', scripts: { dev: 'vite', build: 'vite build' }, devDependencies: { vite: '^6.3.0' } }))
    await write('index.html', '<!doctype html><html><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>')
    await write('src/main.js', "document.querySelector('#app').textContent = 'built by vite'\n")

    const source = await builder.captureSource(sandbox)
    const plan = await builder.plan(source, 'auto', {})
    expect(plan).toMatchObject({ kind: 'static', detected: 'node', install: ['npm', 'install'], build: ['npm', 'run', 'build'], output_dir: 'dist' })
    const logs: string[] = []
    const started = performance.now()
    const release = await builder.build(job(source, plan, logs))
    console.log(`vite build (container, npm install, vite build, release): ${(performance.now() - started).toFixed(0)} ms`)

    expect(logs).toContain('$ npm install')
    expect(logs).toContain('$ npm run build')
    expect(logs.join('\n')).toMatch(/built in/)
    expect(release.kind).toBe('static')
    const files = await entries(release.sha256)
    expect(files).toContain('index.html')
    expect(files.some((f) => /^assets\/index-[\w-]+\.js$/.test(f))).toBe(true)
    expect(files.some((f) => f.startsWith('node_modules'))).toBe(false)
    expect(creates).toBe(1)
    expect(await builderContainers()).toBe(0)
    // The builder never showed up as a sandbox.
    expect((await driver.listSandboxes()).map((s) => s.ref.id)).toEqual([sandbox.id])

    // Installed dependencies and a build in the sandbox itself change nothing the snapshot holds but dist/.
    await sh('npm install --no-audit --no-fund >/dev/null 2>&1 && test -d node_modules/vite')
    const capture = performance.now()
    const again = await builder.captureSource(sandbox)
    console.log(`snapshot of the Vite app with node_modules in the sandbox: ${(performance.now() - capture).toFixed(0)} ms, ${source.files} files`)
    expect(again.files).toBe(source.files + 1) // package-lock.json, which npm install wrote
    expect((await entries(again.sha256)).some((f) => f.startsWith('node_modules'))).toBe(false)
  }, 300_000)

  it('a failing build is an invalid error, its output logged, its container removed', async () => {
    const source = await builder.captureUpload(
      await tarball({ 'package.json': JSON.stringify({ name: 'broken', scripts: { build: 'echo compiling-now && echo something broke >&2 && exit 3' } }) }, new Date()),
    )
    const plan = await builder.plan(source, 'auto', {})
    const logs: string[] = []
    const error = await expectMiosaError(builder.build(job(source, plan, logs)), 'invalid')
    expect(error.message).toBe('the build failed: `npm run build` exited with 3')
    expect(logs).toContain('compiling-now')
    expect(logs).toContain('something broke')
    expect(await builderContainers()).toBe(0)
  }, 120_000)

  it('a build that makes no output directory fails clearly', async () => {
    const source = await builder.captureUpload(await tarball({ 'package.json': JSON.stringify({ name: 'nothing', scripts: { build: 'echo done' } }) }, new Date()))
    const plan = await builder.plan(source, 'auto', {})
    const error = await expectMiosaError(builder.build(job(source, plan, [])), 'invalid', 'output_dir')
    expect(error.message).toMatch(/no output directory \(looked for dist\/, build\/, out\/\)/)
  }, 120_000)

  it('a build over its time limit is stopped', async () => {
    const source = await builder.captureUpload(await tarball({ 'package.json': JSON.stringify({ name: 'slow', scripts: { build: 'sleep 60' } }) }, new Date()))
    const plan = { ...(await builder.plan(source, 'auto', {})), install: null }
    const error = await expectMiosaError(builder.build(job(source, plan, [], 3_000)), 'invalid')
    expect(error.message).toMatch(/timed out after 3 s/)
    expect(await builderContainers()).toBe(0)
  }, 60_000)

  it('cleanup removes leftover builder containers', async () => {
    await driver.createSandbox({ sandboxId: `bld_${randomBase32(20)}`, kind: 'builder', organizationId: ORG, workspaceId: WS, template: 'node', cpu: 1, memoryMb: 512, pidsLimit: 256 })
    expect(await builderContainers()).toBe(1)
    expect((await driver.listSandboxes()).map((s) => s.ref.id)).toEqual([sandbox.id])
    await builder.cleanup()
    expect(await builderContainers()).toBe(0)
  }, 60_000)
})

/** Rewrites one entry's name in a plain tar stream (the header checksum recomputed), to make an archive node-tar would refuse to write. */
async function* rewriteName(tar: Readable, from: string, to: string): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of tar) chunks.push(chunk as Buffer)
  const all = Buffer.concat(chunks)
  for (let off = 0; off + 512 <= all.length; off += 512) {
    const name = all.subarray(off, off + 100).toString('utf8').replace(/\0.*$/s, '')
    if (name !== from) continue
    all.fill(0, off, off + 100)
    all.write(to, off, 'utf8')
    all.fill(0x20, off + 148, off + 156)
    let sum = 0
    for (let i = off; i < off + 512; i++) sum += all[i] ?? 0
    all.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'utf8')
  }
  yield all
}
