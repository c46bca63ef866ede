import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import type { BuiltImage, ImageBuildSpec, ImageStore } from '../image-store.js'
import { LABEL } from './container-spec.js'
import { dockerArchiveToOci } from './oci-archive.js'
import { RUNTIME_FOR } from './template-recipes.js'
import type { WorkspaceNetworks } from './workspace-networks.js'

// Release images on the Docker Engine. Builds use the classic builder (the API's version
// 1): it runs each RUN step in a container on the network we name, so a build reaches
// out through the workspace's fenced network like its sandboxes do and never the host.
// (BuildKit, through this API, only knows host, none and default; the classic builder
// takes a user-defined network, checked on Docker 20.10.) Every built or loaded image is
// tagged miosa-release:<digest>, so nothing prunes it as dangling.

export const RELEASE_REPO = 'miosa-release'
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g
/** Build output lines longer than this are cut. */
const MAX_LINE = 8 * 1024
const CPU_PERIOD = 100_000

export interface DockerImagesOptions {
  docker: Dockerode
  networks: WorkspaceNetworks
  /** Labels every image this platform builds. */
  platformId: () => string
  /** Host path of the trusted CA bundle build steps need (npm and pip through an intercepting proxy). */
  caBundle?: string | undefined
  /** The image of a runtime recipe (runtime-node, runtime-python), built when missing. */
  runtimeImage: (recipe: string, signal?: AbortSignal) => Promise<string>
  /** Where export spools an image's layers (default: the OS temp dir). */
  spoolDir?: string | undefined
  logger: Logger
}

interface BuildEvent {
  stream?: unknown
  error?: unknown
  errorDetail?: { message?: string }
  aux?: { ID?: string }
}

export class DockerImages implements ImageStore {
  private readonly docker: Dockerode
  private readonly spoolDir: string

  constructor(private readonly options: DockerImagesOptions) {
    this.docker = options.docker
    this.spoolDir = options.spoolDir ?? join(tmpdir(), 'miosa-images')
  }

  async caBundle(): Promise<Buffer | undefined> {
    return this.options.caBundle === undefined ? undefined : readFile(this.options.caBundle)
  }

  runtimeImage(runtime: 'node' | 'python', signal?: AbortSignal): Promise<string> {
    return this.options.runtimeImage(RUNTIME_FOR[runtime], signal)
  }

  /** Builds holding the workspace's network: the reconciler's prune would otherwise remove it under a RUN step. */
  build(spec: ImageBuildSpec): Promise<BuiltImage> {
    return this.options.networks.hold(spec.workspaceId, 'sandboxes', (network) => this.buildOn(network, spec))
  }

  private async buildOn(network: string, spec: ImageBuildSpec): Promise<BuiltImage> {
    spec.signal?.throwIfAborted()
    // A private tag until the digest is known: the image is never dangling, not even for a moment.
    const buildTag = `miosa-build:${randomBytes(8).toString('hex')}`
    const memory = spec.memoryMb * 1024 * 1024
    const lines = lineSplitter(spec.onLog)
    let failure: string | undefined
    let id: string | undefined
    try {
      const stream = await this.docker.buildImage(spec.context as unknown as NodeJS.ReadableStream, {
        t: buildTag,
        dockerfile: spec.dockerfile ?? 'Dockerfile',
        labels: { ...spec.labels, [LABEL.managed]: 'true', [LABEL.platform]: this.options.platformId() },
        // No build args: build-time values never reach an image build (they would stay in its history).
        networkmode: network,
        memory,
        memswap: memory,
        cpuperiod: CPU_PERIOD,
        cpuquota: Math.round(spec.cpu * CPU_PERIOD),
        rm: true,
        forcerm: true,
        version: '1',
        abortSignal: spec.signal,
      })
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(
          stream,
          (error: Error | null) => (error === null ? resolve() : reject(error)),
          (event: BuildEvent) => {
            if (typeof event.stream === 'string') lines.push(event.stream)
            if (event.aux?.ID !== undefined) id = event.aux.ID
            if (event.error !== undefined) failure = event.errorDetail?.message ?? String(event.error)
          },
        )
      })
    } catch (error) {
      if (spec.signal?.aborted === true) throw spec.signal.reason
      failure = error instanceof Error ? error.message : String(error)
    } finally {
      lines.end()
    }
    if (spec.signal?.aborted === true) {
      await this.untag(buildTag)
      throw spec.signal.reason
    }
    if (failure !== undefined) {
      spec.onLog(failure)
      await this.untag(buildTag)
      throw new MiosaError('invalid', `the build failed: ${failure}`, { details: { error: failure } })
    }
    const info = await this.inspect(id ?? buildTag)
    if (info === undefined) throw new MiosaError('internal', 'the image build finished but the image is missing')
    const digest = info.Id.replace(/^sha256:/, '')
    await this.docker.getImage(info.Id).tag({ repo: RELEASE_REPO, tag: digest })
    await this.untag(buildTag)
    return { digest, sizeBytes: info.Size }
  }

  async export(digest: string, signal?: AbortSignal): Promise<Readable> {
    const saved = (await this.docker.getImage(`sha256:${checkDigest(digest)}`).get()) as unknown as Readable
    const archive = await dockerArchiveToOci(saved, { spoolDir: this.spoolDir, repoTag: `${RELEASE_REPO}:${digest}`, signal })
    if (archive.digest !== digest) {
      archive.stream.destroy()
      throw new MiosaError('internal', `exporting image ${digest} gave image ${archive.digest}`)
    }
    return archive.stream
  }

  async load(archive: Readable, signal?: AbortSignal): Promise<string> {
    const stream = await this.docker.loadImage(archive as unknown as NodeJS.ReadableStream, { quiet: true, ...(signal === undefined ? {} : { abortSignal: signal }) })
    const loaded: string[] = []
    let failure: string | undefined
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => (error === null ? resolve() : reject(error)),
        (event: BuildEvent) => {
          if (typeof event.stream === 'string') loaded.push(event.stream.trim())
          if (event.error !== undefined) failure = event.errorDetail?.message ?? String(event.error)
        },
      )
    })
    if (failure !== undefined) throw new MiosaError('invalid', `loading the release image failed: ${failure}`)
    // "Loaded image: miosa-release:<digest>" for our archives, "Loaded image ID: sha256:…" for untagged ones.
    const name = loaded.map((l) => /^Loaded image(?: ID)?: (\S+)$/.exec(l)?.[1]).find((n) => n !== undefined)
    const info = name === undefined ? undefined : await this.inspect(name)
    if (info === undefined) throw new MiosaError('invalid', `loading the release image failed: ${loaded.join(' ') || 'the archive held no image'}`)
    const digest = info.Id.replace(/^sha256:/, '')
    await this.docker.getImage(info.Id).tag({ repo: RELEASE_REPO, tag: digest })
    return digest
  }

  async has(digest: string): Promise<boolean> {
    return (await this.inspect(`sha256:${checkDigest(digest)}`)) !== undefined
  }

  private async inspect(name: string): Promise<Dockerode.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(name).inspect()
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined
      throw error
    }
  }

  /** Removes a tag only (noprune): the image stays under its other tags. */
  private async untag(tag: string): Promise<void> {
    await this.docker
      .getImage(tag)
      .remove({ noprune: true })
      .catch((error: unknown) => {
        if ((error as { statusCode?: number }).statusCode !== 404) this.options.logger.warn({ err: error, tag }, 'could not remove a build tag')
      })
  }
}

function checkDigest(digest: string): string {
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new MiosaError('invalid', `not an image digest: ${JSON.stringify(digest)}`)
  return digest
}

/** Build output arrives in pieces that split lines anywhere: whole lines, without color, out. */
function lineSplitter(onLine: (line: string) => void): { push(text: string): void; end(): void } {
  let pending = ''
  const emit = (raw: string) => {
    const line = raw.replace(ANSI_ESCAPE, '').trimEnd()
    onLine(line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line)
  }
  return {
    push: (text: string) => {
      const parts = (pending + text).split(/\r?\n|\r/)
      pending = parts.pop() ?? ''
      for (const line of parts) emit(line)
    },
    end: () => {
      if (pending !== '') emit(pending)
      pending = ''
    },
  }
}
