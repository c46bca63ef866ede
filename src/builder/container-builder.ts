import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { BlobStore } from '../blobs/blob-store.js'
import { MiosaError } from '../core/errors.js'
import type { ImageStore } from '../runtime/image-store.js'
import type { RuntimeDriver, RuntimeRef } from '../runtime/runtime-driver.js'
import { abortable, runBuildSteps, seconds, uploadSource } from './build-io.js'
import type { BuildJob, BuildPlan, BuildSettings, Builder, PublishKind, Release, SourceSnapshot } from './builder.js'
import { DETECT_READS, detectPlan } from './detect.js'
import { buildImageRelease, exportImageArchive } from './image-build.js'
import type { ImageBuildContext } from './image-build.js'
import { extractInto, indexTar, isDirectory } from './normalized-tar.js'
import { WORKSPACE, captureSandboxSource, captureUploadedSource, storeDir, storeTree } from './source-snapshot.js'
import type { SnapshotContext } from './source-snapshot.js'

// Builds run in a fresh, short-lived builder container started through the RuntimeDriver
// (never the live sandbox): the snapshot is uploaded into its /workspace, the plan's
// install and build steps run as argv (settings' command lines through `sh -lc`), the
// output directory comes back as a normalized tarball: the release. A plan with no steps
// (plain static files) needs no container at all: its release is made from the snapshot.
// Dynamic plans are built into an OCI image by the image store instead (image-build.ts).

export interface BuildLimits {
  cpu: number
  memoryMb: number
  pidsLimit: number
}

export interface ContainerBuilderOptions {
  runtime: RuntimeDriver
  blobs: BlobStore
  /** Where dynamic releases are built, exported and loaded (required for dynamic plans). */
  images?: ImageStore | undefined
  logger: Logger
  /** The template builder containers start from. */
  template?: string | undefined
  limits?: BuildLimits | undefined
  /** Scratch space for extracting and packing (default: the OS temp dir). */
  spoolDir?: string | undefined
  /** The largest uploaded source tarball accepted. */
  maxUploadBytes?: number | undefined
}

const DEFAULT_LIMITS: BuildLimits = { cpu: 2, memoryMb: 2048, pidsLimit: 1024 }
const DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
/** Quiet, non-interactive npm: no progress bars, funding notes or update checks in the logs. */
const BUILD_ENV: Record<string, string> = {
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  npm_config_update_notifier: 'false',
  npm_config_progress: 'false',
  NO_UPDATE_NOTIFIER: '1',
  FORCE_COLOR: '0',
}

export class ContainerBuilder implements Builder {
  private readonly runtime: RuntimeDriver
  private readonly blobs: BlobStore
  private readonly images: ImageStore | undefined
  private readonly logger: Logger
  private readonly template: string
  private readonly limits: BuildLimits
  private readonly spoolDir: string
  private readonly maxUploadBytes: number
  /** Builder containers of builds running in this process: cleanup leaves them alone. */
  private readonly running = new Set<string>()
  /** Image digest → archive blob of the images this process exported. */
  private readonly archives = new Map<string, string>()

  constructor(options: ContainerBuilderOptions) {
    this.runtime = options.runtime
    this.blobs = options.blobs
    this.images = options.images
    this.logger = options.logger
    this.template = options.template ?? 'node'
    this.limits = options.limits ?? DEFAULT_LIMITS
    this.spoolDir = options.spoolDir ?? join(tmpdir(), 'miosa-builder')
    this.maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
  }

  captureSource(sandbox: RuntimeRef): Promise<SourceSnapshot> {
    return captureSandboxSource(this.context(), this.runtime, sandbox)
  }

  captureUpload(tar: Readable): Promise<SourceSnapshot> {
    return captureUploadedSource(this.context(), tar, this.maxUploadBytes)
  }

  async plan(source: SourceSnapshot, kind: PublishKind, settings: BuildSettings): Promise<BuildPlan> {
    const reads = new Set<string>(DETECT_READS)
    const index = await indexTar(await this.blobs.get(source.sha256), (path) => reads.has(path))
    return detectPlan({ files: index.files, read: (path) => index.contents.get(path) }, kind, settings)
  }

  async build(job: BuildJob): Promise<Release> {
    const { plan } = job
    const started = Date.now()
    if (plan.kind === 'dynamic') {
      if (this.images === undefined) throw new MiosaError('unavailable', 'this platform cannot build dynamic releases (no image store is configured)')
      const release = await buildImageRelease(this.imageContext(this.images), job)
      this.logger.info({ versionId: job.versionId, ms: Date.now() - started, release: release.sha256 }, 'image build finished')
      return release
    }
    if (plan.detected !== 'node' && plan.detected !== 'static-files') {
      throw new MiosaError('invalid', `a static build of a ${plan.detected} app is not supported yet: publish it with kind dynamic`, { details: { detected: plan.detected } })
    }
    if (plan.install === null && plan.build === null) {
      const release = await this.releaseFromSnapshot(job)
      this.logger.debug({ versionId: job.versionId, ms: Date.now() - started, release: release.sha256 }, 'release made from the snapshot (no build steps)')
      return release
    }
    const release = await this.buildInContainer(job)
    this.logger.info({ versionId: job.versionId, ms: Date.now() - started, release: release.sha256 }, 'build finished')
    return release
  }

  async archiveRelease(digest: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
    if (this.images === undefined) throw new MiosaError('unavailable', 'this platform cannot export images (no image store is configured)')
    const started = Date.now()
    const stored = await exportImageArchive(this.imageContext(this.images), digest, signal)
    this.logger.info({ release: digest, archive: stored.sha256, bytes: stored.size, ms: Date.now() - started }, 'release image archived')
    return stored
  }

  private imageContext(images: ImageStore): ImageBuildContext {
    return { runtime: this.runtime, images, blobs: this.blobs, spoolDir: this.spoolDir, limits: this.limits, logger: this.logger, archives: this.archives, running: this.running }
  }

  async cleanup(): Promise<void> {
    if (this.runtime.listBuilders === undefined) return
    const builders = await this.runtime.listBuilders()
    for (const builder of builders) {
      if (this.running.has(builder.ref.id)) continue
      this.logger.info({ builder: builder.sandboxId }, 'removing a leftover builder container')
      await this.runtime.destroy(builder.ref).catch((error: unknown) => this.logger.warn({ err: error, builder: builder.sandboxId }, 'could not remove a leftover builder'))
    }
  }

  /** Plain static files: the release is the snapshot (or its output directory), repacked. */
  private async releaseFromSnapshot(job: BuildJob): Promise<Release> {
    const output = job.plan.output_dir
    if (output === '.') {
      // The snapshot is already a normalized tarball of exactly these files.
      const stat = await this.blobs.stat(job.source.sha256)
      if (stat === undefined) throw new MiosaError('internal', `source snapshot ${job.source.sha256} is missing from the blob store`)
      job.onLog(`release: the ${job.source.files} source files as they are (no build)`)
      return { sha256: stat.sha256, size_bytes: stat.size, kind: job.plan.kind }
    }
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 })
    const dir = await mkdtemp(join(this.spoolDir, 'release-'))
    try {
      const prefix = `${output}/`
      await extractInto(dir, await this.blobs.get(job.source.sha256), (path) => path === output || path.startsWith(prefix) || prefix.startsWith(`${path}/`), this.logger)
      if (!(await isDirectory(join(dir, output)))) throw missingOutput(job.plan, [output])
      const stored = await storeDir(this.context(job.signal), join(dir, output), { ignores: false })
      job.onLog(`release: the ${stored.files} files of ${output}/ (no build)`)
      return { sha256: stored.sha256, size_bytes: stored.size_bytes, kind: job.plan.kind }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  private async buildInContainer(job: BuildJob): Promise<Release> {
    const { plan } = job
    const deadline = Date.now() + job.timeoutMs
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(new MiosaError('invalid', `the build timed out after ${seconds(job.timeoutMs)}`)), job.timeoutMs)
    const signal = job.signal === undefined ? timeout.signal : AbortSignal.any([job.signal, timeout.signal])
    const builderId = `bld_${job.versionId}_${randomBytes(3).toString('hex')}`
    let ref: RuntimeRef | undefined
    try {
      // Awaited even when aborted (a few hundred ms): the finally below then removes the
      // container, so a shutdown never leaves a builder behind for nobody to remove.
      ref = await this.runtime.createSandbox(
        {
          sandboxId: builderId,
          kind: 'builder',
          organizationId: job.organizationId,
          workspaceId: job.workspaceId,
          template: this.template,
          ...this.limits,
        },
        { signal },
      )
      if (signal.aborted) throw signal.reason
      this.running.add(ref.id)
      const container = ref
      await uploadSource(this.runtime, container, { blobs: this.blobs, sha256: job.source.sha256 }, signal)

      await runBuildSteps(this.runtime, container, [plan.install, plan.build], { job, deadline, env: { ...job.env, ...BUILD_ENV }, signal })

      const output = await this.findOutput(container, plan)
      job.onLog(`release: ${output === '.' ? 'the workspace' : `${output}/`}`)
      const tar = await abortable(this.runtime.downloadArchive(container, output === '.' ? WORKSPACE : `${WORKSPACE}/${output}`), signal)
      const stored = await abortable(storeTree(this.context(signal), tar, { ignores: false }), signal)
      job.onLog(`release: ${stored.files} files, ${stored.size_bytes} bytes`)
      return { sha256: stored.sha256, size_bytes: stored.size_bytes, kind: plan.kind }
    } catch (error) {
      if (signal.aborted && !(error instanceof MiosaError)) {
        const reason: unknown = signal.reason
        throw reason instanceof MiosaError ? reason : new MiosaError('invalid', 'the build was cancelled', { cause: error })
      }
      throw error
    } finally {
      clearTimeout(timer)
      if (ref !== undefined) {
        await this.runtime.destroy(ref).catch((error: unknown) => this.logger.warn({ err: error, builder: builderId }, 'could not remove the builder container'))
        this.running.delete(ref.id)
      }
    }
  }

  /** The plan's output directory, or the first of its candidates, that the build made. */
  private async findOutput(ref: RuntimeRef, plan: BuildPlan): Promise<string> {
    if (plan.output_dir === '.') return '.'
    const candidates = plan.output_candidates ?? [plan.output_dir]
    for (const candidate of candidates) {
      try {
        const stat = await this.runtime.stat(ref, `${WORKSPACE}/${candidate}`)
        if (stat.type === 'dir') return candidate
      } catch (error) {
        if (!(error instanceof MiosaError && error.code === 'not_found')) throw error
      }
    }
    throw missingOutput(plan, candidates)
  }

  private context(signal?: AbortSignal): SnapshotContext {
    return { blobs: this.blobs, spoolDir: this.spoolDir, logger: this.logger, signal }
  }
}

function missingOutput(plan: BuildPlan, candidates: readonly string[]): MiosaError {
  const names = candidates.map((c) => `${c}/`).join(', ')
  const what = plan.build === null ? 'the source has' : 'the build finished but made'
  return new MiosaError('invalid', `the build failed: ${what} no ${candidates.length > 1 ? `output directory (looked for ${names})` : `${names} directory`}; set output_dir to where the build writes its files`, {
    details: { field: 'output_dir', looked_for: candidates },
  })
}
