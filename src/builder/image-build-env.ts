import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { MiosaError } from '../core/errors.js'
import type { RuntimeRef } from '../runtime/runtime-driver.js'
import { abortable, runBuildSteps, uploadSource } from './build-io.js'
import type { BuildJob } from './builder.js'
import { WORKSPACE, finishSteps, isStandalone, preludeStep, releaseCopies, setupSteps } from './dockerfiles.js'
import type { ImageBuildContext } from './image-build.js'
import { extractInto, listTree } from './normalized-tar.js'

// An image build with build-time values: Docker's classic builder (the one that takes the
// workspace's fenced network) knows no build secrets, and a build arg stays in the image's
// history. So the steps run in a short-lived builder container started from the app's
// template with the values in their environment (as static builds do), and what the
// release takes of the built workspace comes back into the image context, to be copied
// into the runtime image: no value is ever a build arg, a layer's command or a label.

/** Runs the plan's steps in a builder container of `template` with the job's env; the release's files land in `app`. Answers their paths. */
export async function buildInBuilder(ctx: ImageBuildContext, job: BuildJob, template: string, app: string, signal: AbortSignal): Promise<string[]> {
  const { plan } = job
  const standalone = isStandalone(plan)
  const deadline = Date.now() + job.timeoutMs
  const builderId = `bld_${job.versionId}_${randomBytes(3).toString('hex')}`
  job.onLog(`build-time env vars: the steps run in a builder container (${template} template) with them; the image is assembled from its result`)
  let ref: RuntimeRef | undefined
  try {
    // Awaited even when aborted: the finally below then removes the container.
    ref = await ctx.runtime.createSandbox(
      { sandboxId: builderId, kind: 'builder', organizationId: job.organizationId, workspaceId: job.workspaceId, template, ...ctx.limits },
      { signal },
    )
    if (signal.aborted) throw signal.reason
    ctx.running.add(ref.id)
    const container = ref
    await uploadSource(ctx.runtime, container, { blobs: ctx.blobs, sha256: job.source.sha256 }, signal)

    // The venv is copied out of the container: its python a copy, not a link to /usr/bin (links out of the tree are dropped).
    const steps = [...setupSteps(plan, { copies: true }), plan.install, plan.build, ...finishSteps(plan, standalone)]
    await runBuildSteps(ctx.runtime, container, steps, { job, deadline, env: { ...job.env }, argvOf: preludeStep, signal })

    await mkdir(app, { recursive: true })
    for (const copy of releaseCopies(standalone, true)) {
      const path = copy.from === '.' ? WORKSPACE : `${WORKSPACE}/${copy.from}`
      if (!(await isDirectory(ctx, container, path))) {
        if (copy.from === 'public') continue // a Next.js app without public/
        throw new MiosaError('invalid', `the build failed: the build finished but made no ${copy.from}/ directory`, { details: { looked_for: [copy.from] } })
      }
      await abortable(fetchInto(ctx, container, path, copy.to === '.' ? app : join(app, copy.to)), signal)
    }
    const listing = await listTree(app)
    job.onLog(`release: ${listing.files} files from the builder`)
    return listing.paths
  } catch (error) {
    if (signal.aborted && !(error instanceof MiosaError)) {
      const reason: unknown = signal.reason
      throw reason instanceof MiosaError ? reason : new MiosaError('invalid', 'the build was cancelled', { cause: error })
    }
    throw error
  } finally {
    if (ref !== undefined) {
      await ctx.runtime.destroy(ref).catch((error: unknown) => ctx.logger.warn({ err: error, builder: builderId }, 'could not remove the builder container'))
      ctx.running.delete(ref.id)
    }
  }
}

async function isDirectory(ctx: ImageBuildContext, ref: RuntimeRef, path: string): Promise<boolean> {
  try {
    return (await ctx.runtime.stat(ref, path)).type === 'dir'
  } catch (error) {
    if (error instanceof MiosaError && error.code === 'not_found') return false
    throw error
  }
}

/** The container's directory `path` (its archive holds the directory's contents) as the host directory `target`. */
async function fetchInto(ctx: ImageBuildContext, ref: RuntimeRef, path: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true })
  await extractInto(target, await ctx.runtime.downloadArchive(ref, path), () => true, ctx.logger)
}
