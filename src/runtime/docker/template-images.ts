import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import * as tar from 'tar'
import { MiosaError } from '../../core/errors.js'
import { withLock } from '../file-lock.js'
import { exited, run } from '../processes.js'
import { BASE_IMAGE } from '../image-store.js'
import type { RuntimeTemplate, TemplateBuildStatus, TemplateProgress } from '../runtime-driver.js'
import { LABEL } from './container-spec.js'
import { linkOrCopy, nodeDistribution, npmDistribution } from './node-distribution.js'
import { APT_INSTALL_SCRIPT, BASE, DEBIAN_SUITE, RECIPES, computeHash, packageTemplatesDir, publicRecipe, recipe } from './template-recipes.js'
import type { Input, Recipe, TemplateDefinition } from './template-recipes.js'

// Sandbox template images, all built on this machine (no registry needed): a Debian
// base from debootstrap, then one Dockerfile per template under templates/<name>/ at
// the package root, each FROM its parent. A tag carries a hash of everything that
// defines the image (Dockerfile, files, parent), so changing a Dockerfile rebuilds it
// and its children. Builds are shared within a process and serialized across
// processes by a lock directory in the cache.

export { AGENT_FILE, prepareAgentDir } from './node-distribution.js'
export type { TemplateDefinition } from './template-recipes.js'

export { BASE_IMAGE }
/** Lines of build output quoted in a build error. */
const ERROR_TAIL_LINES = 20
/** Build files in cacheDir/tmp older than this belong to a build that crashed. */
const LEFTOVER_MS = 24 * 60 * 60_000
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g
/** How Docker's builder announces a Dockerfile instruction: `Step 3/7 : RUN …`. */
const STEP_LINE = /^Step (\d+)\/(\d+) : /
/** Docker's bookkeeping between steps: not progress anyone needs to read. */
const BOOKKEEPING = /^\s*(---> |Removing intermediate container )/

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
  /** What it reported last, for whoever asks how far it is (GET /templates). */
  status: TemplateBuildStatus
}

export class TemplateImages {
  private readonly docker: Dockerode
  private readonly cacheDir: string
  private readonly overrides: Record<string, string>
  private readonly templatesDir: string
  private readonly logger: Logger
  private readonly hashes = new Map<string, Promise<string>>()
  private readonly jobs = new Map<string, Job>()
  /** Template images already tagged :latest by this process. */
  private readonly aliased = new Set<string>()
  /** Images seen on the daemon: a sandbox start does not ask again (see forget). */
  private readonly present = new Set<string>()
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
      RECIPES.filter((r) => r.name !== BASE && r.internal !== true).map(async (r) => {
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
          building: info === undefined ? (this.jobs.get(`build:${r.name}`) ?? this.jobs.get(`pull:${r.name}`))?.status ?? null : null,
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
    const image = await this.ensureImage(name, onProgress, signal)
    await this.alias(name, image)
    return image
  }

  /** The image of an internal runtime recipe (runtime-node, runtime-python): built first when missing. */
  async ensureRuntime(name: string, signal?: AbortSignal): Promise<string> {
    if (recipe(name).internal !== true) throw new MiosaError('internal', `${name} is not a runtime image`)
    signal?.throwIfAborted()
    return this.ensureImage(name, undefined, signal)
  }

  /**
   * Tags the image also miosa/template-<name>:latest, so a user's Dockerfile can say
   * `FROM miosa/template-node` (no registry: the build finds it on this daemon).
   */
  private async alias(name: string, image: string): Promise<void> {
    const key = `${name} ${image}`
    if (this.aliased.has(key)) return
    await this.docker.getImage(image).tag({ repo: `miosa/template-${name}`, tag: 'latest' })
    this.aliased.add(key)
  }

  /** The override image (pulled when missing), or the local build. */
  private async ensureImage(name: string, onProgress: Emit | undefined, signal: AbortSignal | undefined): Promise<string> {
    const override = this.overrides[name]
    if (override !== undefined) {
      if (await this.isPresent(override)) return override
      return this.share(`pull:${name}`, (emit, jobSignal) => this.pull(name, override, emit, jobSignal), onProgress, signal)
    }
    const tag = await this.tag(name)
    if (await this.isPresent(tag)) return tag
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
      packed.catch(() => { /* awaited below, after the import: this only keeps an early failure from being unhandled */ })
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
        await this.docker.getImage(BASE_IMAGE).remove().catch(() => { /* there may be no image; the import error that follows says why */ })
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
      let at: { step?: number; steps?: number } = {}
      const line = (text: string) => {
        // The builder colors a RUN step's stderr: plain text for progress and errors.
        const trimmed = text.replace(ANSI_ESCAPE, '').trimEnd()
        if (trimmed === '') return
        tail.push(trimmed)
        const step = STEP_LINE.exec(trimmed)
        if (step !== null) at = { step: Number(step[1]), steps: Number(step[2]) }
        if (!BOOKKEEPING.test(trimmed)) emit({ template: r.name, message: trimmed, ...at })
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

  /** Puts Node.js (node/bin/node, node/include/node), npm (npm/) or apt-install.sh into a build context. */
  private async addInput(input: Input, context: string): Promise<void> {
    if (input === 'apt-install') {
      await cp(join(this.templatesDir, ...APT_INSTALL_SCRIPT), join(context, 'apt-install.sh'))
    } else if (input === 'node') {
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
        // A line without a step (the closing "built …") keeps the step its image got to.
        const same = p.template === created.status.template
        created.status = { ...created.status, template: p.template, message: p.message, step: p.step ?? (same ? created.status.step : null), steps: p.steps ?? (same ? created.status.steps : null) }
        for (const listener of listeners) {
          try {
            listener(p)
          } catch (error) {
            this.logger.warn({ err: error }, 'template progress listener failed')
          }
        }
      }
      const created: Job = {
        promise: Promise.resolve(''),
        listeners,
        waiters: 0,
        controller,
        status: { template: key.slice(key.indexOf(':') + 1), message: 'starting', step: null, steps: null, started_at: new Date().toISOString() },
      }
      created.promise = start(emit, controller.signal).finally(() => {
        if (this.jobs.get(key) === created) this.jobs.delete(key)
      })
      // Settled by its waiters; a job everyone abandoned must not become an unhandled rejection.
      created.promise.catch(() => { /* see above: its waiters get the error */ })
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

  /** miosa/template-<name>:<hash>, miosa/<runtime>:<hash>, or BASE_IMAGE. */
  private async tag(name: string): Promise<string> {
    if (name === BASE) return BASE_IMAGE
    return `miosa/${recipe(name).internal === true ? '' : 'template-'}${name}:${await this.hash(name)}`
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

  /** An image someone removed behind our back: the next ensure looks (and builds) again. */
  forget(image: string): void {
    this.present.delete(image)
  }

  private async isPresent(image: string): Promise<boolean> {
    if (this.present.has(image)) return true
    if ((await this.inspect(image)) === undefined) return false
    this.present.add(image)
    return true
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

/** Unmounts whatever a failed debootstrap left mounted inside its target, so removing it cannot reach the host's /dev or /proc. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '')
  const inside = mounts
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length)
  for (const point of inside) await run('umount', ['-l', point]).catch(() => { /* the tree is removed lazily either way; what stays mounted is cleaned on the next build */ })
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
