import type { ListeningSocket } from './proc-net-tcp.js'
import type { RuntimeRef } from './runtime-driver.js'

export type { ListeningSocket } from './proc-net-tcp.js'

// Runtime instances: the production processes of dynamic deployments, one container each
// from a release image. The seam between core's instance service and reconciler and
// whatever runs them (src/runtime/docker/docker-instances.ts on Docker). The driver starts,
// inspects, lists and stops; deciding what should run is core's job.

/** The port every instance's server listens on inside its container (also given as PORT). */
export const INSTANCE_PORT = 8080

/** Whose an instance is: what its labels say, and what re-adoption reads back. */
export interface InstanceOwner {
  organizationId: string
  workspaceId: string
  deploymentId: string
  environment: string
  versionId: string
}

export interface InstanceSpec extends InstanceOwner {
  instanceId: string
  /** The release image digest (64 hex). */
  image: string
  /** The start command, or undefined for the image's own CMD. */
  cmd?: string[] | undefined
  /** Injected as is; PORT is added by the driver. */
  env: Record<string, string>
  cpu: number
  memoryMb: number
  pidsLimit: number
}

/** A one-off run from a release image (a Procfile `release:` command). */
export interface OneOffSpec extends Omit<InstanceSpec, 'instanceId'> {
  cmd: string[]
  timeoutMs: number
  onLog(line: string): void
  signal?: AbortSignal | undefined
}

export interface InstanceAddress {
  host: string
  port: number
}

/** What the driver finds of one instance. */
export interface InstanceStatus {
  running: boolean
  /** Set once exited. */
  exitCode: number | null
  /** Set when the runtime killed it for memory. */
  oomKilled: boolean
  /** Where the edge reaches its server while it runs. */
  address: InstanceAddress | undefined
}

/** An instance the driver knows, from its labels (for re-adoption after a restart). */
export interface RuntimeInstance extends InstanceStatus, InstanceOwner {
  ref: RuntimeRef
  instanceId: string
}

export interface InstanceLogLine {
  stream: 'stdout' | 'stderr'
  /** ISO 8601, from the runtime. */
  timestamp: string
  line: string
}

export interface InstanceDriver {
  /** Creates and starts the container on its workspace's apps network (reachable from the host, not from sandboxes); answers at once, not when healthy. */
  start(spec: InstanceSpec): Promise<{ ref: RuntimeRef; address: InstanceAddress }>
  /** undefined when the container is gone. */
  inspect(ref: RuntimeRef): Promise<InstanceStatus | undefined>
  /** SIGTERM, then SIGKILL after `graceMs`, then removed. Idempotent. */
  stop(ref: RuntimeRef, graceMs: number): Promise<void>
  /** Every instance of this platform, running or exited. */
  list(): Promise<RuntimeInstance[]>
  /** Its output: the last `tail` lines, then (with follow) new ones until the signal aborts or the container ends. */
  logs(ref: RuntimeRef, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncIterable<InstanceLogLine>
  /** The TCP sockets its processes listen on (none once it has stopped): where its app listens, whatever PORT says. */
  listeningSockets(ref: RuntimeRef): Promise<ListeningSocket[]>
  /** Runs `cmd` once in a fresh container from the image (same env and network as an instance) and removes it; answers its exit code (null: timed out). */
  runOnce(spec: OneOffSpec): Promise<{ exitCode: number | null }>
}

export interface HealthResult {
  ok: boolean
  /** Why it failed, for events and logs. */
  reason?: string | undefined
}

/** One health check of an instance's server: an HTTP GET of `path` (2xx/3xx passes) or, with a null path, a TCP connect. */
export type HealthChecker = (address: InstanceAddress, check: { path: string | null; timeout_seconds: number }) => Promise<HealthResult>
