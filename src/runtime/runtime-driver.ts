import type { Duplex, Readable } from 'node:stream'
import type { ExecResponse, FileStat } from './agent/protocol.js'

// The one seam between the platform and whatever runs sandboxes: Docker first
// (runtime/docker/), later microVMs or Kubernetes. Plain specs cross it, never store
// rows. Every implementation runs test/contract/runtime-driver.case.ts.

export interface SandboxSpec {
  sandboxId: string
  organizationId: string
  workspaceId: string
  /** Template name (miosa-sandbox, node, nextjs, python, static). */
  template: string
  /** Start from this snapshot (SnapshotRef.id) instead of the template's image. */
  fromSnapshot?: string | undefined
  /** CPU cores (fractions allowed). */
  cpu: number
  memoryMb: number
  pidsLimit: number
  /**
   * What the container is for (default sandbox). A builder (a short-lived build of a
   * publish) never comes from or feeds a warm pool and is not in listSandboxes.
   */
  kind?: 'sandbox' | 'builder' | undefined
  /** Where it may open connections beyond its workspace network; absent or null: anywhere. */
  egress?: EgressPolicy | null | undefined
}

/**
 * A restricted sandbox's egress: connections leaving its workspace network go only to
 * these IPv4 addresses, CIDRs and host names (resolved when the rules are applied), and
 * to DNS through the runtime's resolver. An empty list: no internet at all.
 */
export interface EgressPolicy {
  allow: string[]
}

/** What a warm pool keeps containers ready for. */
export interface WarmKey {
  organizationId: string
  workspaceId: string
  template: string
}

/** An opaque handle to a sandbox's compute: the driver's own id for it. */
export interface RuntimeRef {
  driver: string
  id: string
}

export interface SnapshotRef {
  driver: string
  /** Driver-specific: the image for Docker. */
  id: string
  sizeBytes: number | null
}

export interface ExecSpec {
  argv: string[]
  cwd?: string | undefined
  env?: Record<string, string> | undefined
  timeoutMs?: number | undefined
  stdin?: Buffer | undefined
  maxOutputBytes?: number | undefined
}

export type ExecResult = ExecResponse

export interface ExecStreams {
  onStdout(chunk: Buffer): void
  onStderr(chunk: Buffer): void
  stdin?: AsyncIterable<Buffer> | undefined
  signal?: AbortSignal | undefined
}

export interface Terminal {
  /** Raw terminal bytes both ways. */
  stream: Duplex
  resize(cols: number, rows: number): Promise<void>
  close(): void
}

/** What the driver finds running when it lists its own sandboxes (for re-adoption). */
export interface RuntimeSandbox {
  ref: RuntimeRef
  sandboxId: string
  organizationId: string
  workspaceId: string
  running: boolean
}

export interface TemplateProgress {
  /** The image being built now: the template asked for, or one of its parents first. */
  template: string
  message: string
  /** How far its Dockerfile is: step `step` of `steps` (absent before the first step, and for the Debian base). */
  step?: number | undefined
  steps?: number | undefined
  done?: boolean
}

/** A template image build running in this process, as far as it got. */
export interface TemplateBuildStatus {
  /** The image being built now: the template itself, or a parent it needs first. */
  template: string
  message: string
  step: number | null
  steps: number | null
  started_at: string
}

export interface RuntimeTemplate {
  name: string
  description: string
  parent: string | null
  image: string
  built: boolean
  size_bytes: number | null
  user: string
  default_port: number | null
  /** Its image build in progress (first use, or `miosa templates build`), else null. */
  building: TemplateBuildStatus | null
}

export interface RuntimeDriver {
  readonly name: string
  listTemplates(): Promise<RuntimeTemplate[]>
  /** Makes a template ready to start sandboxes from (builds its image when missing). */
  prepareTemplate(name: string, onProgress?: (p: TemplateProgress) => void, signal?: AbortSignal): Promise<void>
  /**
   * Optional: the id of a sandbox whose compute is already started for this key (a warm
   * pool). The caller records the sandbox under that id and passes it to createSandbox,
   * which then only claims it.
   */
  reserveWarm?(key: WarmKey): string | undefined
  /** Creates and starts the sandbox; answers once its agent is ready for exec and files. */
  createSandbox(spec: SandboxSpec, o?: { signal?: AbortSignal; onProgress?: (p: TemplateProgress) => void }): Promise<RuntimeRef>
  /** Stops compute, keeping the filesystem. */
  stop(ref: RuntimeRef): Promise<void>
  /** Starts a new session from the kept filesystem (its egress policy in force); answers once the agent is ready. */
  resume(ref: RuntimeRef, o?: { egress?: EgressPolicy | null | undefined }): Promise<void>
  /** Removes compute and filesystem. Idempotent: an already-gone sandbox is fine. */
  destroy(ref: RuntimeRef): Promise<void>
  /** Freezes the current filesystem into a snapshot that outlives the sandbox. */
  snapshot(ref: RuntimeRef, snapshotId: string): Promise<SnapshotRef>
  deleteSnapshot(snapshot: SnapshotRef): Promise<void>
  exec(ref: RuntimeRef, cmd: ExecSpec, io?: ExecStreams): Promise<ExecResult>
  /**
   * Starts a command in the background under `id` (a service: a dev server, say), its
   * output appended to the log it answers with; a service already running under the id
   * is ended first. Ends with the sandbox's session: stopped sandboxes run nothing.
   */
  startService(ref: RuntimeRef, id: string, cmd: Omit<ExecSpec, 'timeoutMs' | 'stdin' | 'maxOutputBytes'>): Promise<{ pid: number; logPath: string }>
  /** Ends a service's processes; false when it was not running. */
  stopService(ref: RuntimeRef, id: string): Promise<boolean>
  readFile(ref: RuntimeRef, path: string): Promise<Readable>
  writeFile(ref: RuntimeRef, path: string, content: Buffer | Readable, mode?: number): Promise<FileStat>
  stat(ref: RuntimeRef, path: string): Promise<FileStat>
  list(ref: RuntimeRef, path: string): Promise<FileStat[]>
  mkdir(ref: RuntimeRef, path: string): Promise<FileStat>
  move(ref: RuntimeRef, from: string, to: string, overwrite: boolean): Promise<FileStat>
  remove(ref: RuntimeRef, path: string, recursive: boolean): Promise<void>
  downloadArchive(ref: RuntimeRef, path: string): Promise<Readable>
  /** Extracts a tar into `path`; the caller has already refused entries that would escape it. */
  uploadArchive(ref: RuntimeRef, path: string, tar: Readable): Promise<void>
  openTerminal(ref: RuntimeRef, o: { cols: number; rows: number; cwd?: string; env?: Record<string, string> }): Promise<Terminal>
  /** Where a port inside the sandbox is reachable from the platform (for previews). */
  address(ref: RuntimeRef, port: number): Promise<{ host: string; port: number }>
  /** Every sandbox of this platform the runtime knows, from its labels. */
  listSandboxes(): Promise<RuntimeSandbox[]>
  /** Optional: every builder of this platform the runtime knows (sandboxId is the builder's id), for cleanup after a crash. */
  listBuilders?(): Promise<RuntimeSandbox[]>
  /**
   * Optional: puts the egress rules of these running sandboxes in place again (after a
   * platform restart or a host reboot) and removes rules left for containers that stopped or went.
   */
  syncEgress?(restricted: ReadonlyArray<{ ref: RuntimeRef; egress: EgressPolicy }>): Promise<void>
  /**
   * Optional: bytes the sandbox's own filesystem changes take on the host (its writable
   * layer, /workspace included; not its image, nor memory-backed /tmp). undefined when the
   * runtime cannot tell (the sandbox is gone, say).
   */
  diskUsage?(ref: RuntimeRef): Promise<number | undefined>
  /** Optional: frees what only workspaces outside `liveWorkspaces` used (networks). */
  releaseUnused?(liveWorkspaces: ReadonlySet<string>): Promise<void>
  close(): Promise<void>
}
