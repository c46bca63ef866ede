import type { Readable } from 'node:stream'

// Dynamic releases are OCI images. This is the seam between the builder and the runtime
// (src/runtime/docker/docker-images.ts on Docker) for making, exporting and loading them;
// the publish pipeline and runtime instances never talk to a daemon themselves.

/** The debootstrap image every template descends from, and the base of the Dockerfiles the builder compiles. */
export const BASE_IMAGE = 'miosa/base:bookworm'

export interface ImageBuildSpec {
  /** The build context: a tar (gzip allowed) whose root is the source, Dockerfile included. */
  context: Readable
  /** Path of the Dockerfile inside the context (default `Dockerfile`). */
  dockerfile?: string | undefined
  /** Labels put on the image. */
  labels?: Record<string, string> | undefined
  /** The workspace whose fenced network RUN steps use (outbound only, never the host). */
  workspaceId: string
  cpu: number
  memoryMb: number
  signal?: AbortSignal | undefined
  /** Each line of build output as it comes. */
  onLog(line: string): void
}

export interface BuiltImage {
  /** The image digest: Docker's image id without `sha256:` (64 lowercase hex). */
  digest: string
  sizeBytes: number
}

export interface ImageStore {
  /** Builds an image; throws MiosaError('invalid', …) when the build fails, its output already logged. */
  build(spec: ImageBuildSpec): Promise<BuiltImage>
  /** The image as an OCI image layout archive (also loadable by `docker load`). */
  export(digest: string, signal?: AbortSignal): Promise<Readable>
  /** Loads an archive made by export(); answers the digest it holds. */
  load(archive: Readable, signal?: AbortSignal): Promise<string>
  /** Whether this host has the image. */
  has(digest: string): Promise<boolean>
  /** The slim base image a release of a node or python app runs on (built on first use, like templates). */
  runtimeImage(runtime: 'node' | 'python', signal?: AbortSignal): Promise<string>
  /** The CA bundle a build's RUN steps must trust (outbound HTTPS may be intercepted), or undefined when none is configured. */
  caBundle(): Promise<Buffer | undefined>
}
