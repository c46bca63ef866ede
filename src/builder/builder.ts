import type { Readable } from 'node:stream'
import type { RuntimeRef } from '../runtime/runtime-driver.js'

// Publishing turns a frozen copy of a workspace into an immutable release. The Builder is
// the seam between the publish pipeline (core: versions, routes) and how builds run (a
// short-lived container started through the RuntimeDriver, never the live sandbox).
// Static releases first; dynamic ones (a server to run) share the same plan and release.

export type PublishKind = 'auto' | 'static' | 'dynamic'

/** Overrides of what detection decides, from the publish request. */
export interface BuildSettings {
  /** A shell command line run by `sh -lc` in /workspace, e.g. "npm ci". */
  install_command?: string | undefined
  build_command?: string | undefined
  /** Relative to /workspace, e.g. "dist". */
  output_dir?: string | undefined
  /** Serve index.html for paths that match no file (single-page apps). */
  spa_fallback?: boolean | undefined
}

/** What a build will do, decided from the source's files (and settings). Stored with the version. */
export interface BuildPlan {
  /** What the release is: files the edge serves, or a server the runtime runs (next issue). */
  kind: 'static' | 'dynamic'
  /** How the source was recognised. */
  detected: 'static-files' | 'node' | 'dockerfile' | 'python' | 'ruby' | 'go'
  /** argv run in /workspace, or null when there is no such step. */
  install: string[] | null
  build: string[] | null
  /** Relative to /workspace: what the release is made of ('.' for plain static files). */
  output_dir: string
  /**
   * When no framework names the output directory: the directories to try after the build,
   * first found wins (output_dir is the first of them). Absent when output_dir is certain.
   */
  output_candidates?: string[] | undefined
  /** The server's start command (dynamic releases), or null (a Dockerfile's own CMD). A Procfile `web:` line always decides it. */
  start: string[] | null
  /** A Procfile `release:` command: run once from the release image before a version goes live; its failure fails the version. */
  release?: string[] | null | undefined
  spa_fallback: boolean
  /** Why: one line per decision, shown by `miosa deploy --plan`. */
  reasons: string[]
}

/** A tarball of /workspace as it was at publish time (ignored paths left out), in the blob store. */
export interface SourceSnapshot {
  sha256: string
  size_bytes: number
  files: number
}

/**
 * An immutable build output. Static: named by the sha256 of its normalized tarball in the
 * blob store. Dynamic: an OCI image, named by its image digest (the sha256 of its config,
 * Docker's image id without `sha256:`), also stored as an OCI archive in the blob store
 * (`archive_sha256`), so a host that lacks the image loads it from there.
 */
export interface Release {
  sha256: string
  size_bytes: number
  kind: 'static' | 'dynamic'
  /** Dynamic only: the blob holding the image as an OCI archive. */
  archive_sha256?: string | undefined
}

export interface BuildJob {
  organizationId: string
  workspaceId: string
  /** The version being built: names and labels the builder container. */
  versionId: string
  source: SourceSnapshot
  plan: BuildPlan
  /** The whole build (install and build) is killed after this long. */
  timeoutMs: number
  /**
   * The deployment environment's build-time values: the environment of install and build
   * steps, run in a builder container (image builds too, when there are any: see
   * image-build-env.ts). Never a build arg, a layer or a label of any image.
   */
  env?: Record<string, string> | undefined
  /** Each line of build output as it comes (stdout and stderr). */
  onLog(line: string): void
  signal?: AbortSignal | undefined
}

export interface Builder {
  /** Freezes the sandbox's /workspace (node_modules, .git, .next/cache and other ignores left out). */
  captureSource(sandbox: RuntimeRef): Promise<SourceSnapshot>
  /** The same from an uploaded tarball (tar or tar.gz) of a source directory. */
  captureUpload(tar: Readable): Promise<SourceSnapshot>
  /** Detects the build plan from the snapshot's files; `kind` and settings override detection. */
  plan(source: SourceSnapshot, kind: PublishKind, settings: BuildSettings): Promise<BuildPlan>
  /** Runs the plan in a fresh builder container and stores the release; throws MiosaError('invalid', …) when the build fails, with its output already logged. */
  build(job: BuildJob): Promise<Release>
  /**
   * Stores a dynamic release's image as an OCI archive in the blob store (the slow part of
   * a dynamic build, so publishing runs it once the version is live). Answers the archive's blob.
   */
  archiveRelease(digest: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }>
  /** Removes builder containers no build in this process owns (after a crash). */
  cleanup(): Promise<void>
}
