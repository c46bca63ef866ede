import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import type { TemplateProgress } from '../../src/runtime/runtime-driver.js'
import { AGENT_FILE, BASE_IMAGE, TemplateImages, prepareAgentDir } from '../../src/runtime/docker/template-images.js'
import { expectMiosaError } from '../helpers/errors.js'

// Template images against the real Docker Engine, in the machine's shared cache: the
// first run builds the Debian base, miosa-sandbox and node (minutes); later runs find
// them. Test containers carry TEST_LABEL and are removed; the images stay (a cache).

const TEMPLATES = fileURLToPath(new URL('../../templates', import.meta.url))
const TEST_LABEL = 'miosa.test'
const RUN_ID = randomBytes(6).toString('hex')
const BUILD_MS = 15 * 60_000

const docker = new Docker()
const config = loadConfig({ dataDir: tmpdir() }, { MIOSA_CACHE_DIR: process.env.MIOSA_CACHE_DIR })
const logger = pino({ level: 'silent' })

function templateImages(extra: { overrides?: Record<string, string>; templatesDir?: string } = {}): TemplateImages {
  return new TemplateImages({ docker, cacheDir: config.cacheDir, caBundle: config.caBundle, logger, ...extra })
}

/** Runs argv in a fresh container of `image` to its end: its output (stdout and stderr together) and exit code. */
async function runIn(image: string, argv: string[], o: { user?: string; binds?: string[] } = {}): Promise<{ output: string; exitCode: number }> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: argv,
    ...(o.user === undefined ? {} : { User: o.user }),
    Labels: { [TEST_LABEL]: RUN_ID },
    HostConfig: { Binds: o.binds ?? [], NetworkMode: 'none' },
  })
  try {
    await container.start()
    const { StatusCode } = (await container.wait()) as { StatusCode: number }
    const logs = await container.logs({ stdout: true, stderr: true, follow: false })
    return { output: demux(logs), exitCode: StatusCode }
  } finally {
    await container.remove({ force: true })
  }
}

/** The payloads of Docker's multiplexed log frames (an 8-byte header each), in order. */
function demux(logs: Buffer): string {
  const parts: Buffer[] = []
  for (let at = 0; at + 8 <= logs.length; ) {
    const size = logs.readUInt32BE(at + 4)
    parts.push(logs.subarray(at + 8, at + 8 + size))
    at += 8 + size
  }
  return Buffer.concat(parts).toString()
}

describe('TemplateImages', () => {
  const images = templateImages()
  const progress: TemplateProgress[] = []
  let node: string

  beforeAll(async () => {
    node = await images.ensure('node', (p) => progress.push(p))
  }, BUILD_MS)

  afterAll(async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN_ID}`] } })
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})))
  })

  it('builds node on its parents: Node.js 22 and npm 10 for user miosa', async () => {
    expect(node).toMatch(/^miosa\/template-node:[0-9a-f]{12}$/)
    const { output, exitCode } = await runIn(node, ['sh', '-c', 'id -un; id -u; node -v; npm -v; npx --version; pwd'], { user: 'miosa' })
    expect(exitCode).toBe(0)
    const [user, uid, nodeVersion, npmVersion, npxVersion, cwd] = output.trim().split('\n')
    expect({ user, uid, cwd }).toEqual({ user: 'miosa', uid: '1000', cwd: '/workspace' })
    expect(nodeVersion).toMatch(/^v22\./)
    expect(npmVersion).toMatch(/^10\./)
    expect(npxVersion).toBe(npmVersion)
    // Not Debian's nodejs: the official build in /usr/local.
    expect((await runIn(node, ['sh', '-c', 'command -v node; dpkg -s nodejs >/dev/null 2>&1 || echo no-debian-nodejs'])).output.trim().split('\n')).toEqual([
      '/usr/local/bin/node',
      'no-debian-nodejs',
    ])
    const labels = (await docker.getImage(node).inspect()).Config.Labels
    expect(labels['miosa.template']).toBe('node')
  })

  it('lists the public templates with their images and which are built', async () => {
    const list = await images.list()
    expect(list.map((t) => t.name)).toEqual(['miosa-sandbox', 'node', 'nextjs', 'python', 'static', 'go', 'ruby'])
    const byName = new Map(list.map((t) => [t.name, t]))
    expect(byName.get('node')).toMatchObject({ image: node, built: true, parent: 'miosa-sandbox', user: 'miosa', default_port: 3000 })
    expect(byName.get('node')?.size_bytes).toBeGreaterThan(100_000_000)
    expect(byName.get('miosa-sandbox')).toMatchObject({ built: true, parent: null, default_port: null })
    expect(byName.get('nextjs')).toMatchObject({ parent: 'node', default_port: 3000 })
    expect(byName.get('python')).toMatchObject({ parent: 'miosa-sandbox', default_port: 8000 })
    expect(byName.get('static')).toMatchObject({ parent: 'miosa-sandbox', default_port: 8080 })
    for (const t of list) {
      expect(t.image).toMatch(new RegExp(`^miosa/template-${t.name}:[0-9a-f]{12}$`))
      // built means exactly that tag is present.
      const present = await docker.getImage(t.image).inspect().then(() => true, () => false)
      expect(t.built).toBe(present)
      expect(t.size_bytes === null).toBe(!present)
    }
  })

  it('answers a built template at once, to concurrent callers alike', async () => {
    const started = Date.now()
    expect(await Promise.all([images.ensure('node'), images.ensure('node'), templateImages().ensure('node')])).toEqual([node, node, node])
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('knows its templates and refuses unknown names, the internal base among them', async () => {
    expect(images.definition('nextjs')).toEqual({
      name: 'nextjs',
      description: expect.any(String),
      parent: 'node',
      user: 'miosa',
      defaultPort: 3000,
    })
    for (const name of ['no-such-template', 'base']) {
      expect(() => images.definition(name)).toThrow(`template ${name} not found`)
      await expectMiosaError(images.ensure(name), 'not_found')
    }
  })

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController()
    controller.abort(new Error('caller went away'))
    await expect(images.ensure('node', undefined, controller.signal)).rejects.toThrow('caller went away')
  })

  it('uses an override image instead of building, and says when one cannot be pulled', async () => {
    const overridden = templateImages({ overrides: { python: BASE_IMAGE, static: `miosa/no-such-image:${RUN_ID}` } })
    expect(await overridden.ensure('python')).toBe(BASE_IMAGE)
    const list = await overridden.list()
    expect(list.find((t) => t.name === 'python')).toMatchObject({ image: BASE_IMAGE, built: true })
    expect(list.find((t) => t.name === 'static')).toMatchObject({ built: false, size_bytes: null })
    const error = await expectMiosaError(overridden.ensure('static'), 'unavailable')
    expect(error.message).toContain(`pulling miosa/no-such-image:${RUN_ID} for template static failed`)
  })

  it('builds the child of an overridden template on the override image', async () => {
    const sandbox = (await images.list()).find((t) => t.name === 'miosa-sandbox')?.image ?? ''
    await docker.getImage(sandbox).tag({ repo: 'miosa/test-override', tag: RUN_ID })
    const override = `miosa/test-override:${RUN_ID}`
    let child: string | undefined
    try {
      const overridden = templateImages({ overrides: { 'miosa-sandbox': override } })
      child = await overridden.ensure('node')
      expect(child).toMatch(/^miosa\/template-node:[0-9a-f]{12}$/)
      expect(child).not.toBe(node)
      const parentId = (await docker.getImage(override).inspect()).Id
      const history = (await docker.getImage(child).history()) as { Id: string }[]
      expect(history.map((layer) => layer.Id)).toContain(parentId)
      expect((await runIn(child, ['node', '-v'])).output).toMatch(/^v22\./)
    } finally {
      if (child !== undefined) await docker.getImage(child).remove().catch(() => {})
      await docker.getImage(override).remove().catch(() => {})
    }
  }, BUILD_MS)

  it('rejects a failing build with the last lines of its output', async () => {
    const dir = await templatesWithStatic(`RUN echo "about to fail ${RUN_ID}" && exit 3\n`)
    try {
      const broken = templateImages({ templatesDir: dir })
      const lines: string[] = []
      const error = await expectMiosaError(broken.ensure('static', (p) => lines.push(p.message)), 'internal')
      expect(error.message).toMatch(/^building template static failed: /)
      expect(error.message).toContain(`about to fail ${RUN_ID}`)
      expect(error.message).toContain('returned a non-zero code: 3')
      expect(lines.some((l) => l.includes(`about to fail ${RUN_ID}`))).toBe(true)
      expect((await broken.list()).find((t) => t.name === 'static')?.built).toBe(false)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, BUILD_MS)

  it('builds once when two builders (as in two processes) want the same image: the second waits for the lock', async () => {
    const dir = await templatesWithStatic(`RUN echo "built ${RUN_ID}" && sleep 2\n`)
    const [first, second] = [templateImages({ templatesDir: dir }), templateImages({ templatesDir: dir })]
    const builds: string[] = []
    const track = (who: string) => (p: TemplateProgress) => {
      if (p.template === 'static' && p.message.startsWith('building ')) builds.push(who)
    }
    let image: string | undefined
    try {
      const [a, b] = await Promise.all([first.ensure('static', track('first')), second.ensure('static', track('second'))])
      image = a
      expect(b).toBe(a)
      expect(builds).toHaveLength(1)
    } finally {
      if (image !== undefined) await docker.getImage(image).remove().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }, BUILD_MS)

  it('cancels a build nobody waits for any more', async () => {
    const dir = await templatesWithStatic(`RUN echo "sleeping ${RUN_ID}" && sleep 60\n`)
    try {
      const slow = templateImages({ templatesDir: dir })
      const controller = new AbortController()
      const started = Date.now()
      const building = slow.ensure('static', (p) => {
        if (p.message === `sleeping ${RUN_ID}`) controller.abort(new Error('the caller went away'))
      }, controller.signal)
      await expect(building).rejects.toThrow('the caller went away')
      expect(Date.now() - started).toBeLessThan(30_000)
      // Docker stops the build when its request is gone; the lock goes with it.
      await expect.poll(async () => (await docker.listContainers()).filter((c) => c.Command.includes(`sleeping ${RUN_ID}`)).length, { timeout: 10_000 }).toBe(0)
      await expect.poll(() => existsSync(join(config.cacheDir, 'locks', 'static.lock')), { timeout: 10_000 }).toBe(false)
      expect((await slow.list()).find((t) => t.name === 'static')?.built).toBe(false)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, BUILD_MS)
})

/** A copy of the templates (the same hashes for all but static: the built images) whose static Dockerfile runs `step` on miosa-sandbox. */
async function templatesWithStatic(step: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'miosa-templates-'))
  await cp(TEMPLATES, dir, { recursive: true })
  await writeFile(join(dir, 'static', 'Dockerfile'), `ARG PARENT_IMAGE\nFROM \${PARENT_IMAGE}\n${step}`)
  return dir
}

describe('prepareAgentDir', () => {
  let work: string
  let agentDir: string | undefined

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'miosa-agent-src-'))
  })

  afterAll(async () => {
    await rm(work, { recursive: true, force: true })
    // Unique to this run (its agent file is): the shared cache keeps nothing of it.
    if (agentDir !== undefined) await rm(agentDir, { recursive: true, force: true })
  })

  it('puts the official Node.js 22 and the agent in one directory that runs in a bare container', async () => {
    const source = `// ${RUN_ID}\nconsole.log(process.version, __filename)\n`
    const agentJs = join(work, 'agent.cjs')
    await writeFile(agentJs, source)
    const dirs = await Promise.all([prepareAgentDir(config.cacheDir, agentJs), prepareAgentDir(config.cacheDir, agentJs)])
    agentDir = dirs[0]
    expect(dirs[1]).toBe(agentDir)
    expect(agentDir.startsWith(join(config.cacheDir, 'agent'))).toBe(true)
    expect(await readFile(join(agentDir, AGENT_FILE), 'utf8')).toBe(source)
    expect((await stat(join(agentDir, 'node'))).mode & 0o777).toBe(0o755)
    // Present: answered without copying again.
    expect(await prepareAgentDir(config.cacheDir, agentJs)).toBe(agentDir)

    // Building miosa-sandbox makes the base image when it is missing.
    await templateImages().ensure('miosa-sandbox')
    const { output, exitCode } = await runIn(BASE_IMAGE, ['/opt/miosa/agent/node', `/opt/miosa/agent/${AGENT_FILE}`], {
      binds: [`${agentDir}:/opt/miosa/agent:ro`],
    })
    expect(exitCode).toBe(0)
    expect(output.trim()).toMatch(/^v22\.\d+\.\d+ \/opt\/miosa\/agent\/agent\.cjs$/)

    // Another agent is another directory.
    await writeFile(agentJs, `${source}// changed\n`)
    const changed = await prepareAgentDir(config.cacheDir, agentJs)
    expect(changed).not.toBe(agentDir)
    await rm(changed, { recursive: true, force: true })
  }, BUILD_MS)
})
