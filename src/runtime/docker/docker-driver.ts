import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import { AgentClient } from '../agent/agent-client.js'
import { AGENT_DIR, AGENT_OWNER_ENV, AGENT_PORT, AGENT_TOKEN_ENV } from '../agent/protocol.js'
import type { FileStat } from '../agent/protocol.js'
import type {
  EgressPolicy,
  ExecResult,
  ExecSpec,
  ExecStreams,
  RuntimeDriver,
  RuntimeRef,
  RuntimeSandbox,
  RuntimeTemplate,
  SandboxSpec,
  SnapshotRef,
  TemplateProgress,
  Terminal,
  WarmKey,
} from '../runtime-driver.js'
import { LABEL, containerOptions } from './container-spec.js'
import { DockerImages } from './docker-images.js'
import { DockerInstances } from './docker-instances.js'
import { DockerEgress } from './docker-egress.js'
import { DockerSnapshots, SNAPSHOT_REPO } from './docker-snapshots.js'
import { AGENT_FILE, TemplateImages, prepareAgentDir } from './template-images.js'
import { WarmPool } from './warm-pool.js'
import { WorkspaceNetworks } from './workspace-networks.js'
import { WorkspaceVolumes } from './workspace-volumes.js'

const DRIVER = 'docker'
const AGENT_READY_MS = 15_000
/** Seconds a stop waits for processes to exit on SIGTERM before SIGKILL. */
const STOP_GRACE_S = 1
/** A warm pool nobody has drawn from in this long is emptied. */
const WARM_POOL_IDLE_MS = 10 * 60_000
/**
 * /tmp is a tmpfs of this share of the sandbox's memory (its pages count against the
 * memory limit anyway), so filling it fails with ENOSPC instead of growing the host's disk.
 */
const TMP_SHARE_OF_MEMORY = 0.25
/** The image's non-root user, for templates that run commands as it. */
const USER_IDS: Record<string, { uid: number; gid: number }> = { miosa: { uid: 1000, gid: 1000 } }

export interface DockerDriverOptions {
  docker: Dockerode
  /** Stable id of this platform (from the store, known once it starts): labels every container it starts. */
  platformId: () => string
  /** Where template build inputs (downloaded Node.js, npm) are cached. */
  cacheDir: string
  /**
   * Where the btrfs pool of sandbox workspaces and their snapshots lives (state, not cache:
   * snapshots are in it); default <cacheDir>/workspaces. false: /workspace stays in each
   * container and snapshots commit it whole (the path before volumes; the bench compares).
   */
  workspacesDir?: string | false | undefined
  /** Host path of the trusted CA bundle injected into every container. */
  caBundle: string | undefined
  /** Template name → registry image used instead of a local build. */
  templateImages?: Record<string, string> | undefined
  debianMirror?: string | undefined
  /** Where templates/<name>/Dockerfile are; default: the package's own. */
  templatesDir?: string | undefined
  /** An IPv4 /16 the workspace networks are carved from. */
  subnets: string
  /** Containers kept started per workspace and template (0: none), with these limits. */
  warmPool: { size: number; maxSize?: number; cpu: number; memoryMb: number; pidsLimit: number }
  logger: Logger
}

/** What the driver remembers about a running container: how to reach its agent, and as whom commands run. */
interface Session {
  ip: string
  client: AgentClient
  user: { uid: number; gid: number } | undefined
}

/** Sandboxes as Docker containers, each running the miosa agent under tini. */
export class DockerDriver implements RuntimeDriver {
  readonly name = DRIVER
  /** Release images: built, exported and loaded on this daemon. */
  readonly images: DockerImages
  private readonly docker: Dockerode
  private readonly templates: TemplateImages
  private readonly networks: WorkspaceNetworks
  /** Runtime instances of dynamic deployments, on each workspace's apps network. close() leaves them running. */
  readonly instances: DockerInstances
  private readonly pool: WarmPool
  private readonly egress: DockerEgress
  private readonly volumes: WorkspaceVolumes
  private readonly snapshots: DockerSnapshots
  private readonly volumesOn: boolean
  private readonly sessions = new Map<string, Promise<Session>>()
  /** Sandboxes being started without the pool right now. */
  private coldStarts = 0
  private agentDir: Promise<string> | undefined

  constructor(private readonly options: DockerDriverOptions) {
    this.docker = options.docker
    this.templates = new TemplateImages({
      docker: options.docker,
      cacheDir: options.cacheDir,
      ...(options.caBundle === undefined ? {} : { caBundle: options.caBundle }),
      ...(options.templateImages === undefined ? {} : { overrides: options.templateImages }),
      ...(options.debianMirror === undefined ? {} : { debianMirror: options.debianMirror }),
      ...(options.templatesDir === undefined ? {} : { templatesDir: options.templatesDir }),
      logger: options.logger,
    })
    this.egress = new DockerEgress(options.docker, options.logger)
    this.volumesOn = options.workspacesDir !== false
    this.volumes = new WorkspaceVolumes({
      dir: options.workspacesDir === false || options.workspacesDir === undefined ? join(options.cacheDir, 'workspaces') : options.workspacesDir,
      docker: options.docker,
      platformId: options.platformId,
      logger: options.logger,
    })
    this.snapshots = new DockerSnapshots({ docker: options.docker, volumes: this.volumes, platformId: options.platformId })
    this.networks = new WorkspaceNetworks(options.docker, options.platformId, options.subnets, options.logger)
    this.images = new DockerImages({
      docker: options.docker,
      networks: this.networks,
      platformId: options.platformId,
      caBundle: options.caBundle,
      runtimeImage: (recipe, signal) => reachable(this.templates.ensureRuntime(recipe, signal)),
      logger: options.logger,
    })
    this.instances = new DockerInstances({
      docker: options.docker,
      platformId: options.platformId,
      caBundle: options.caBundle,
      networks: this.networks,
      logger: options.logger,
    })
    const limits = options.warmPool
    this.pool = new WarmPool({
      size: limits.size,
      ...(limits.maxSize === undefined ? {} : { maxSize: limits.maxSize }),
      idleMs: WARM_POOL_IDLE_MS,
      start: (key, sandboxId) => this.start({ ...key, sandboxId, cpu: limits.cpu, memoryMb: limits.memoryMb, pidsLimit: limits.pidsLimit }),
      destroy: (ref) => this.destroy(ref),
      busy: () => this.coldStarts > 0,
      logger: options.logger,
    })
  }

  listTemplates(): Promise<RuntimeTemplate[]> {
    return reachable(this.templates.list())
  }

  async prepareTemplate(name: string, onProgress?: (p: TemplateProgress) => void, signal?: AbortSignal): Promise<void> {
    await reachable(this.templates.ensure(name, onProgress, signal))
  }

  reserveWarm(key: WarmKey): string | undefined {
    return this.pool.reserve(key)
  }

  async createSandbox(spec: SandboxSpec, o: { signal?: AbortSignal; onProgress?: (p: TemplateProgress) => void } = {}): Promise<RuntimeRef> {
    const pooled = spec.fromSnapshot === undefined && (spec.kind ?? 'sandbox') === 'sandbox'
    const warm = pooled ? this.pool.claim(spec.sandboxId) : undefined
    if (warm !== undefined) {
      try {
        await this.fitLimits(warm, spec)
        // Pooled containers start open: a restricted sandbox gets its rules before it is handed out.
        await this.egress.enforce(warm.id, spec.egress)
      } catch (error) {
        await this.destroy(warm).catch((err: unknown) => this.options.logger.warn({ err, container: warm.id }, 'could not remove a pooled container that failed to fit its sandbox'))
        throw error
      }
      return warm
    }
    // While sandboxes start cold, the pool waits: refilling it now would only slow them down.
    this.coldStarts++
    try {
      const ref = await reachable(this.start(spec, o))
      if (pooled) this.pool.demand({ organizationId: spec.organizationId, workspaceId: spec.workspaceId, template: spec.template })
      return ref
    } finally {
      if (--this.coldStarts === 0) this.pool.refillDeferred()
    }
  }

  /**
   * Creates and starts a container for the spec; answers once its agent is ready. Holds the
   * workspace's network until the container is attached, so a prune cannot remove it between.
   */
  private async start(spec: SandboxSpec, o: { signal?: AbortSignal; onProgress?: (p: TemplateProgress) => void } = {}): Promise<RuntimeRef> {
    try {
      return await this.networks.hold(spec.workspaceId, 'sandboxes', (network) => this.startOn(network, spec, o))
    } catch (error) {
      // A prune already removing the network when we took it: make it again, once.
      if (!missing(error, /network .* not found/i)) throw error
      this.networks.forget(spec.workspaceId, 'sandboxes')
      return this.networks.hold(spec.workspaceId, 'sandboxes', (network) => this.startOn(network, spec, o))
    }
  }

  private async startOn(network: string, spec: SandboxSpec, o: { signal?: AbortSignal; onProgress?: (p: TemplateProgress) => void }): Promise<RuntimeRef> {
    const [image, agentDir] = await Promise.all([
      spec.fromSnapshot ?? this.templates.ensure(spec.template, o.onProgress, o.signal),
      (this.agentDir ??= prepareAgentDir(this.options.cacheDir, compiledAgent())).catch((error: unknown) => {
        this.agentDir = undefined
        throw error
      }),
    ])
    const definition = this.templates.definition(spec.template)
    const owner = USER_IDS[definition.user]
    const token = randomBytes(24).toString('base64url')
    const workspace = await this.workspaceVolume(spec, image, owner)
    const options = containerOptions({
        name: `miosa-${spec.sandboxId}`,
        image,
        kind: spec.kind ?? 'sandbox',
        platformId: this.options.platformId(),
        organizationId: spec.organizationId,
        workspaceId: spec.workspaceId,
        labels: { [LABEL.sandbox]: spec.sandboxId, [LABEL.template]: spec.template, ...snapshotLabel(spec.fromSnapshot) },
        network,
        cmd: [`${AGENT_DIR}/node`, `${AGENT_DIR}/${AGENT_FILE}`],
        env: {
          [AGENT_TOKEN_ENV]: token,
          // Files the agent writes belong to the user commands run as, so they can edit them.
          ...(owner === undefined ? {} : { [AGENT_OWNER_ENV]: `${owner.uid}:${owner.gid}` }),
          HOME: definition.user === 'root' ? '/root' : `/home/${definition.user}`,
        },
        caBundle: this.options.caBundle,
        readOnlyMounts: { [agentDir]: AGENT_DIR },
        cpu: spec.cpu,
        memoryMb: spec.memoryMb,
        pidsLimit: spec.pidsLimit,
        workingDir: '/workspace',
        tmpfs: { '/tmp': `rw,nosuid,nodev,mode=1777,size=${tmpSizeMb(spec.memoryMb)}m` },
        workspace,
      })
    const container = await this.docker.createContainer(options).catch(async (error: unknown) => {
      // A template image removed since we last saw it: build (or pull) it again, once.
      if (!missing(error, /no such image/i) || spec.fromSnapshot !== undefined) throw error
      this.templates.forget(image)
      return this.docker.createContainer({ ...options, Image: await this.templates.ensure(spec.template, o.onProgress, o.signal) })
    }).catch(async (error: unknown) => {
      if (workspace !== undefined) await this.volumes.remove(spec.sandboxId).catch(() => { /* the creation's own error is the one to report; the sweep removes an unused volume later */ })
      throw error
    })
    const ref = { driver: DRIVER, id: container.id }
    try {
      await container.start()
      await this.egress.enforce(ref.id, spec.egress)
      await this.session(ref, true)
    } catch (error) {
      await this.destroy(ref).catch((err: unknown) => this.options.logger.warn({ err, container: ref.id }, 'could not remove a sandbox container that failed to start'))
      throw error
    }
    return ref
  }

  /** The sandbox's own /workspace volume (from its snapshot, or its image's /workspace); undefined where there are none. */
  private async workspaceVolume(spec: SandboxSpec, image: string, owner: { uid: number; gid: number } | undefined): Promise<string | undefined> {
    if ((spec.kind ?? 'sandbox') !== 'sandbox' || !this.volumesOn || !(await this.volumes.enabled())) return undefined
    const tag = spec.fromSnapshot === undefined ? undefined : DockerSnapshots.tagOf(spec.fromSnapshot)
    return this.volumes.create(spec.sandboxId, { image, snapshotTag: tag, owner })
  }

  /** A warm container was started with the pool's limits; the sandbox may ask for others. */
  private async fitLimits(ref: RuntimeRef, spec: SandboxSpec): Promise<void> {
    const pool = this.options.warmPool
    if (spec.cpu === pool.cpu && spec.memoryMb === pool.memoryMb && spec.pidsLimit === pool.pidsLimit) return
    const memory = spec.memoryMb * 1024 * 1024
    await this.container(ref).update({ Memory: memory, MemorySwap: memory, NanoCpus: Math.round(spec.cpu * 1e9), PidsLimit: spec.pidsLimit })
  }

  async stop(ref: RuntimeRef): Promise<void> {
    this.forget(ref)
    await ignoreMissing(this.container(ref).stop({ t: STOP_GRACE_S }), [304])
    await this.egress.release(this.container(ref).id)
  }

  async resume(ref: RuntimeRef, o: { egress?: EgressPolicy | null | undefined } = {}): Promise<void> {
    this.forget(ref)
    // After a host reboot the pool is no longer mounted: Docker would bind an empty directory.
    if (this.volumesOn && (await this.volumes.enabled())) await this.volumes.remount()
    await ignoreMissing(this.container(ref).start(), [304], false)
    // Before the agent answers: nothing runs commands in it until its rules are in, and it does not stay up without them.
    await this.egress.enforce(this.container(ref).id, o.egress).catch(async (error: unknown) => {
      await this.container(ref).stop({ t: 0 }).catch(() => { /* the egress error that follows is what the caller needs */ })
      throw error
    })
    await this.session(ref, true)
  }

  async destroy(ref: RuntimeRef): Promise<void> {
    this.forget(ref)
    const info = await this.container(ref).inspect().catch(() => undefined)
    await ignoreMissing(this.container(ref).remove({ force: true, v: true }), [404])
    await this.egress.release(this.container(ref).id)
    // Its snapshots and forks share extents with it, but hold their own references: its volume can go.
    if (info !== undefined && this.volumes.holds(info)) await this.volumes.remove(info.Config.Labels[LABEL.sandbox] as string)
  }

  async syncEgress(restricted: ReadonlyArray<{ ref: RuntimeRef; egress: EgressPolicy }>): Promise<void> {
    await this.egress.sync(restricted.map(({ ref, egress }) => ({ containerId: this.container(ref).id, egress })))
  }

  async diskUsage(ref: RuntimeRef): Promise<number | undefined> {
    // Docker's own accounting of the container's writable layer (what `docker ps --size` shows).
    try {
      // `size` is a query parameter dockerode passes through but does not type.
      const options = { size: true } as Dockerode.ContainerInspectOptions
      const info: Dockerode.ContainerInspectInfo & { SizeRw?: number } = await this.container(ref).inspect(options)
      // /workspace is in a volume of its own: what is written there counts too.
      const workspace = this.volumes.holds(info) ? await this.volumes.usage(info.Config.Labels[LABEL.sandbox] as string) : 0
      return info.SizeRw === undefined ? undefined : info.SizeRw + workspace
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined
      throw error
    }
  }

  async snapshot(ref: RuntimeRef, snapshotId: string): Promise<SnapshotRef> {
    return this.snapshots.take(this.container(ref), snapshotId)
  }

  /** A snapshot by `docker commit` of everything, /workspace included: the path before workspace volumes, for the bench to compare. */
  snapshotByCommit(ref: RuntimeRef, snapshotId: string): Promise<SnapshotRef> {
    return this.snapshots.byCommit(this.container(ref), snapshotId)
  }

  async deleteSnapshot(snapshot: SnapshotRef): Promise<void> {
    await this.snapshots.delete(snapshot)
  }

  /** Names of the snapshots this platform took that still exist (tests remove them with deleteSnapshot). */
  async snapshotIds(): Promise<string[]> {
    return (await this.volumes.snapshotsOf(this.options.platformId())).map((tag) => `${SNAPSHOT_REPO}:${tag}`)
  }

  async exec(ref: RuntimeRef, cmd: ExecSpec, io?: ExecStreams): Promise<ExecResult> {
    const { client, user } = await this.session(ref)
    const request = {
      argv: cmd.argv,
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
      ...(cmd.cwd === undefined ? {} : { cwd: cmd.cwd }),
      ...(cmd.env === undefined ? {} : { env: cmd.env }),
      ...(cmd.timeoutMs === undefined ? {} : { timeout_ms: cmd.timeoutMs }),
      ...(cmd.maxOutputBytes === undefined ? {} : { max_output_bytes: cmd.maxOutputBytes }),
      ...(cmd.stdin === undefined ? {} : { stdin_base64: cmd.stdin.toString('base64') }),
    }
    if (io === undefined) return client.exec(request)
    const exit = await client.execStream(request, io)
    return { exit_code: exit.exit_code, stdout: '', stderr: '', truncated: exit.truncated, timed_out: exit.timed_out, duration_ms: exit.duration_ms }
  }

  async startService(ref: RuntimeRef, id: string, cmd: Omit<ExecSpec, 'timeoutMs' | 'stdin' | 'maxOutputBytes'>): Promise<{ pid: number; logPath: string }> {
    const { client, user } = await this.session(ref)
    const started = await client.startService(id, {
      argv: cmd.argv,
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
      ...(cmd.cwd === undefined ? {} : { cwd: cmd.cwd }),
      ...(cmd.env === undefined ? {} : { env: cmd.env }),
    })
    return { pid: started.pid, logPath: started.log_path }
  }

  async stopService(ref: RuntimeRef, id: string): Promise<boolean> {
    return (await this.session(ref)).client.stopService(id)
  }

  async readFile(ref: RuntimeRef, path: string): Promise<Readable> {
    return (await this.session(ref)).client.readFile(path)
  }

  async writeFile(ref: RuntimeRef, path: string, content: Buffer | Readable, mode?: number): Promise<FileStat> {
    return (await this.session(ref)).client.writeFile(path, content, mode)
  }

  async stat(ref: RuntimeRef, path: string): Promise<FileStat> {
    return (await this.session(ref)).client.stat(path)
  }

  async list(ref: RuntimeRef, path: string): Promise<FileStat[]> {
    return (await this.session(ref)).client.list(path)
  }

  async mkdir(ref: RuntimeRef, path: string): Promise<FileStat> {
    return (await this.session(ref)).client.mkdir(path)
  }

  async move(ref: RuntimeRef, from: string, to: string, overwrite: boolean): Promise<FileStat> {
    return (await this.session(ref)).client.move(from, to, overwrite)
  }

  async remove(ref: RuntimeRef, path: string, recursive: boolean): Promise<void> {
    await (await this.session(ref)).client.remove(path, { recursive })
  }

  async downloadArchive(ref: RuntimeRef, path: string): Promise<Readable> {
    return (await this.session(ref)).client.downloadArchive(path)
  }

  async uploadArchive(ref: RuntimeRef, path: string, tar: Readable): Promise<void> {
    await (await this.session(ref)).client.uploadArchive(path, tar)
  }

  async openTerminal(ref: RuntimeRef, o: { cols: number; rows: number; cwd?: string; env?: Record<string, string> }): Promise<Terminal> {
    const { user } = await this.session(ref)
    const exec = await this.container(ref).exec({
      Cmd: ['/bin/bash', '-l'],
      ...(user === undefined ? {} : { User: `${user.uid}:${user.gid}` }),
      Tty: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      WorkingDir: o.cwd ?? '/workspace',
      Env: ['TERM=xterm-256color', ...Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`)],
    })
    const stream = (await exec.start({ hijack: true, stdin: true, Tty: true })) as unknown as Terminal['stream']
    const resize = async (cols: number, rows: number) => {
      await exec.resize({ w: cols, h: rows })
    }
    await resize(o.cols, o.rows).catch(() => { /* a terminal of the default size still works; the client resizes again */ })
    return { stream, resize, close: () => stream.destroy() }
  }

  async address(ref: RuntimeRef, port: number): Promise<{ host: string; port: number }> {
    return { host: (await this.session(ref)).ip, port }
  }

  async listSandboxes(): Promise<RuntimeSandbox[]> {
    const containers = await this.listKind('sandbox')
    // Pooled containers are not sandboxes yet: their ids are in no record until claimed.
    return containers.filter((c) => !this.pool.owns(c.Labels[LABEL.sandbox] ?? '')).map(describeContainer)
  }

  async listBuilders(): Promise<RuntimeSandbox[]> {
    return (await this.listKind('builder')).map(describeContainer)
  }

  private listKind(kind: 'sandbox' | 'builder'): Promise<Dockerode.ContainerInfo[]> {
    return reachable(this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.kind}=${kind}`, `${LABEL.platform}=${this.options.platformId()}`] },
    }))
  }

  async releaseUnused(liveWorkspaces: ReadonlySet<string>): Promise<void> {
    const removed = await this.networks.prune(liveWorkspaces)
    if (removed > 0) this.options.logger.info({ removed }, 'removed networks of workspaces with no sandboxes')
    const volumes = this.volumesOn ? await this.volumes.sweep() : 0
    if (volumes > 0) this.options.logger.info({ removed: volumes }, 'removed workspace volumes nothing uses')
  }

  async close(): Promise<void> {
    await this.pool.close()
    for (const pending of this.sessions.values()) pending.then((s) => s.client.close()).catch(() => { /* the platform is closing: a session that failed to open has nothing to close */ })
    this.sessions.clear()
  }

  private container(ref: RuntimeRef): Dockerode.Container {
    if (ref.driver !== DRIVER) throw new MiosaError('internal', `a ${ref.driver} sandbox handed to the docker driver`)
    return this.docker.getContainer(ref.id)
  }

  /** How to reach the container's agent: its address and token, from inspect (so it survives a platform restart). */
  private session(ref: RuntimeRef, waitForAgent = false): Promise<Session> {
    let pending = this.sessions.get(ref.id)
    if (pending === undefined) {
      pending = this.connect(ref, waitForAgent)
      this.sessions.set(ref.id, pending)
      pending.catch(() => this.sessions.delete(ref.id))
    }
    return pending
  }

  private async connect(ref: RuntimeRef, waitForAgent: boolean): Promise<Session> {
    let info: Dockerode.ContainerInspectInfo
    try {
      info = await this.container(ref).inspect()
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) throw new MiosaError('not_found', 'the sandbox container is gone', { cause: error })
      throw error
    }
    if (!info.State.Running) throw new MiosaError('conflict', 'the sandbox is not running')
    const ip = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress
    const token = info.Config.Env.find((e) => e.startsWith(`${AGENT_TOKEN_ENV}=`))?.slice(AGENT_TOKEN_ENV.length + 1)
    if (ip === undefined || ip === '' || token === undefined) throw new MiosaError('internal', 'the sandbox container has no address or agent token')
    const client = new AgentClient({ host: ip, port: AGENT_PORT, token })
    if (waitForAgent) await client.waitUntilReady(AGENT_READY_MS)
    const template = info.Config.Labels[LABEL.template]
    const userName = template === undefined ? 'root' : this.templates.definition(template).user
    return { ip, client, user: USER_IDS[userName] }
  }

  private forget(ref: RuntimeRef): void {
    const pending = this.sessions.get(ref.id)
    this.sessions.delete(ref.id)
    pending?.then((s) => s.client.close()).catch(() => { /* a session that failed to open has nothing to close */ })
  }
}

/** Which snapshot a container came from, so a snapshot in use is not deleted even when its image is shared. */
function snapshotLabel(fromSnapshot: string | undefined): Record<string, string> {
  const tag = fromSnapshot === undefined ? undefined : DockerSnapshots.tagOf(fromSnapshot)
  return tag === undefined ? {} : { [LABEL.snapshot]: tag }
}

export function tmpSizeMb(memoryMb: number): number {
  return Math.max(16, Math.floor(memoryMb * TMP_SHARE_OF_MEMORY))
}

function describeContainer(c: Dockerode.ContainerInfo): RuntimeSandbox {
  return {
    ref: { driver: DRIVER, id: c.Id },
    sandboxId: c.Labels[LABEL.sandbox] ?? '',
    organizationId: c.Labels[LABEL.organization] ?? '',
    workspaceId: c.Labels[LABEL.workspace] ?? '',
    // 'paused' is Docker's freezer, which only a snapshot's commit uses: still a running sandbox.
    running: c.State === 'running' || c.State === 'paused',
  }
}

/** A 404 from the daemon whose message says what is missing. */
function missing(error: unknown, what: RegExp): boolean {
  const { statusCode, message } = error as { statusCode?: number; message?: string }
  return statusCode === 404 && what.test(message ?? '')
}

/** A daemon that is not running (or a socket we may not open) is a 503 that says what to do, not a 500. */
async function reachable<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (error) {
    const { code, syscall } = error as { code?: string; syscall?: string }
    if (syscall === 'connect' && (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES')) {
      throw new MiosaError('unavailable', `the Docker Engine is not reachable (${code}): start dockerd, or set DOCKER_HOST`, { cause: error })
    }
    throw error
  }
}

/** Docker answers some no-op lifecycle calls with a status we accept (304 not modified, 404 gone). */
async function ignoreMissing<T>(promise: Promise<T>, statuses: number[], allow404 = true): Promise<void> {
  try {
    await promise
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode
    if (status !== undefined && (statuses.includes(status) || (allow404 && status === 404))) return
    if (status === 404) throw new MiosaError('not_found', 'the sandbox container is gone', { cause: error })
    throw error
  }
}

/** The built agent bundle (dist/runtime/agent/agent.cjs), found from the package root so it works from src/ (tests) and dist/ alike. */
function compiledAgent(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new MiosaError('internal', 'cannot find the miosa package root to locate the sandbox agent')
    dir = parent
  }
  const agent = join(dir, 'dist', 'runtime', 'agent', AGENT_FILE)
  if (!existsSync(agent)) throw new MiosaError('internal', `the sandbox agent is not built (${agent} missing): run npm run build`)
  return agent
}
