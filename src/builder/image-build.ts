import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { BlobStore } from '../blobs/blob-store.js'
import { MiosaError } from '../core/errors.js'
import type { BuiltImage, ImageStore } from '../runtime/image-store.js'
import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { BuildJob, Release } from './builder.js'
import { seconds } from './build-io.js'
import { COMPILED, compiledDockerfile } from './compiled-dockerfiles.js'
import { APP_DIR, CA_FILE, VENV_PROFILE, VENV_PROFILE_FILE, generatedDockerfile, releaseDockerfile, templatesNamed } from './dockerfiles.js'
import { buildInBuilder } from './image-build-env.js'
import { extractInto, indexTar, listTree, packTree } from './normalized-tar.js'

// A dynamic release is an OCI image: built by the image store from the source snapshot
// (its own Dockerfile, or a generated one: built in the app's sandbox template, released on
// a slim runtime image; see dockerfiles.ts), and exported as
// an OCI archive into the blob store, so any host can load it. The image digest names the
// release; the archive's sha256 is where it is kept. The export (hundreds of MB with the
// template's layers) is its own step, run once the version is live.

export interface ImageBuildContext {
  runtime: RuntimeDriver
  images: ImageStore
  blobs: BlobStore
  spoolDir: string
  limits: { cpu: number; memoryMb: number; pidsLimit: number }
  logger: Logger
  /** Image digest → the blob holding its archive, for images exported by this process (a warm rebuild makes the same image). */
  archives: Map<string, string>
  /** Builder containers of builds running in this process: cleanup leaves them alone. */
  running: Set<string>
}

/** The sandbox template an app's generated Dockerfile builds FROM. */
const TEMPLATE_FOR: Partial<Record<string, string>> = { node: 'node', python: 'python', go: 'go', ruby: 'ruby', 'static-files': 'miosa-sandbox' }

export async function buildImageRelease(ctx: ImageBuildContext, job: BuildJob): Promise<Release> {
  const timeout = new AbortController()
  const timer = setTimeout(() => timeout.abort(new MiosaError('invalid', `the build timed out after ${seconds(job.timeoutMs)}`)), job.timeoutMs)
  const signal = job.signal === undefined ? timeout.signal : AbortSignal.any([job.signal, timeout.signal])
  try {
    const built = job.plan.detected === 'dockerfile' ? await fromOwnDockerfile(ctx, job, signal) : await fromGeneratedDockerfile(ctx, job, signal)
    job.onLog(`image: sha256:${built.digest} (${built.sizeBytes} bytes)`)
    // Its OCI archive is stored after the version is live (exportImageArchive): the export is most of a build's time.
    return { sha256: built.digest, size_bytes: built.sizeBytes, kind: 'dynamic', archive_sha256: ctx.archives.get(built.digest) }
  } catch (error) {
    if (signal.aborted && !(error instanceof MiosaError && error.code === 'invalid')) {
      const reason: unknown = signal.reason
      throw reason instanceof MiosaError ? reason : new MiosaError('invalid', 'the build was cancelled', { cause: error })
    }
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** The image as an OCI archive in the blob store: exported, unless this process already stored the same image. */
export async function exportImageArchive(ctx: ImageBuildContext, digest: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const known = ctx.archives.get(digest)
  const existing = known === undefined ? undefined : await ctx.blobs.stat(known)
  if (existing !== undefined) return existing
  const stored = await ctx.blobs.put(await ctx.images.export(digest, signal), { signal })
  ctx.archives.set(digest, stored.sha256)
  return stored
}

/** The snapshot is the context as it is; templates its Dockerfile builds FROM are made ready first. */
async function fromOwnDockerfile(ctx: ImageBuildContext, job: BuildJob, signal: AbortSignal): Promise<BuiltImage> {
  const index = await indexTar(await ctx.blobs.get(job.source.sha256), (path) => path === 'Dockerfile')
  for (const template of templatesNamed(index.contents.get('Dockerfile') ?? '')) {
    job.onLog(`preparing template ${template} (FROM miosa/template-${template})`)
    await ctx.runtime.prepareTemplate(template, undefined, signal)
  }
  if (Object.keys(job.env ?? {}).length > 0) {
    job.onLog('build-time env vars are not passed to a Dockerfile build (build args would stay in the image\'s history); runtime ones reach the app')
  }
  job.onLog('$ docker build (the source\'s Dockerfile)')
  return ctx.images.build({ ...buildSpec(ctx, job, signal), context: await ctx.blobs.get(job.source.sha256) })
}

/**
 * A generated Dockerfile with the source under app/, the CA bundle and the venv's profile
 * script, repacked in the spool. With build-time values, the steps run in a builder
 * container that has them, and the image is only assembled from its result.
 */
async function fromGeneratedDockerfile(ctx: ImageBuildContext, job: BuildJob, signal: AbortSignal): Promise<BuiltImage> {
  const { plan } = job
  const name = TEMPLATE_FOR[plan.detected]
  if (name === undefined) {
    throw new MiosaError('invalid', `building a ${plan.detected} app is not supported yet: add a Dockerfile (FROM miosa/template-miosa-sandbox, say)`, { details: { detected: plan.detected } })
  }
  if (plan.start === null) throw new MiosaError('invalid', 'the build failed: the app has no start command (add a Procfile web: line or a start script)', { details: { field: 'start' } })
  await ctx.runtime.prepareTemplate(name, undefined, signal)
  const template = (await ctx.runtime.listTemplates()).find((t) => t.name === name)
  if (template === undefined) throw new MiosaError('internal', `the ${name} template is missing`)
  const compiled = COMPILED.has(plan.detected)
  // Node and Python release on a slim runtime image; a Procfile app in another language runs in its template as it is.
  const runtime = plan.detected === 'node' || plan.detected === 'python' ? await ctx.images.runtimeImage(plan.detected, signal) : template.image

  await mkdir(ctx.spoolDir, { recursive: true, mode: 0o700 })
  const dir = await mkdtemp(join(ctx.spoolDir, 'image-'))
  try {
    const app = join(dir, APP_DIR)
    const hasEnv = Object.keys(job.env ?? {}).length > 0
    // Go and Ruby build in their own Dockerfiles (compiled-dockerfiles.ts), which never see build-time values.
    if (compiled && hasEnv) job.onLog(`build-time env vars are not passed to a ${plan.detected} build (they would stay in the image); runtime ones reach the app`)
    const withEnv = hasEnv && !compiled
    let files: string[]
    if (withEnv) {
      files = await buildInBuilder(ctx, job, name, app, signal)
    } else {
      await mkdir(app)
      await extractInto(app, await ctx.blobs.get(job.source.sha256), () => true, ctx.logger)
      files = (await listTree(app)).paths
    }
    const spec = { plan, image: template.image, runtime, user: template.user, files }
    const dockerfile = compiled
      ? compiledDockerfile({ plan, image: template.image, user: template.user, files })
      : withEnv || runtime === template.image
        ? releaseDockerfile(spec)
        : generatedDockerfile(spec)
    await writeFile(join(dir, 'Dockerfile'), dockerfile)
    await writeFile(join(dir, CA_FILE), (await ctx.images.caBundle()) ?? '')
    await writeFile(join(dir, VENV_PROFILE_FILE), VENV_PROFILE)
    job.onLog(withEnv ? '$ docker build (generated: the release assembled from the builder\'s result)' : `$ docker build (generated: built in the ${name} template, released on ${runtime.split(':')[0] ?? runtime})`)
    for (const line of dockerfile.trimEnd().split('\n')) job.onLog(`  ${line}`)
    const listing = await listTree(dir)
    return await ctx.images.build({ ...buildSpec(ctx, job, signal), context: packTree(dir, listing.paths) })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function buildSpec(ctx: ImageBuildContext, job: BuildJob, signal: AbortSignal) {
  return {
    dockerfile: 'Dockerfile',
    // Nothing per version here: an unchanged source rebuilds (from cache) into the same digest.
    labels: { 'miosa.organization_id': job.organizationId, 'miosa.workspace_id': job.workspaceId },
    workspaceId: job.workspaceId,
    cpu: ctx.limits.cpu,
    memoryMb: ctx.limits.memoryMb,
    signal,
    onLog: job.onLog,
  }
}
