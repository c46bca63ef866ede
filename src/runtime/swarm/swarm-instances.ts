import { randomBytes } from 'node:crypto'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
import { LABEL } from '../docker/container-spec.js'
import { DockerInstances } from '../docker/docker-instances.js'
import type { WorkspaceNetworks } from '../docker/workspace-networks.js'
import { INSTANCE_PORT } from '../instance-driver.js'
import type {
  InstanceAddress,
  InstanceDriver,
  InstanceLogLine,
  InstanceSpec,
  InstanceStatus,
  ListeningSocket,
  OneOffSpec,
  RuntimeInstance,
} from '../instance-driver.js'
import type { RuntimeRef } from '../runtime-driver.js'
import { serviceSpec } from './service-spec.js'
import { containerIdOf, currentTask, hasEnded, statusCode, tasksByService, untilStarted } from './swarm-tasks.js'
import type { SwarmTask } from './swarm-tasks.js'

// Runtime instances as Docker Swarm services, one service of one replica per instance:
// core starts, health-checks, drains and stops instances one by one (a rollout stops
// exactly the old version's instances, a scale-down exactly the ones it chose), which a
// replicated service's anonymous tasks cannot express. Swarm schedules each task (on this
// node, for now) and keeps its container; core's reconciler replaces one that exits
// (Swarm's restart policy is 'none', so an exit code stays visible and an address never
// changes behind the edge).
//
// Tasks join their workspace's swarm-scoped bridge network, fenced off from the host like
// the plain Docker apps network; the edge reaches a task by its container's address, which
// is only reachable on the node that runs it (see the README's Swarm section). What one
// container can tell (status, logs, listening sockets) is read from the task's container
// on this node, through the plain Docker driver's own code.

const DRIVER = 'swarm'
/** Lines of output a start that exited at once reports, to say why. */
const CRASH_TAIL = 20
/** A one-off service still there this long after its deadline lost its platform: list() removes it. */
const ORPHAN_GRACE_MS = 60_000
/** Scheduling and starting a task here takes about a second; longer means Swarm cannot place it. */
const START_TIMEOUT_MS = 60_000
/** "All of it" for one-off output (Docker's tail takes a number). */
const ALL_LINES = 1_000_000_000

export interface SwarmInstancesOptions {
  docker: Dockerode
  platformId: () => string
  /** Host path of the trusted CA bundle injected into every container (the same path on every node). */
  caBundle: string | undefined
  /** Made with the 'swarm' apps scope: its apps networks are swarm-scoped bridges. */
  networks: WorkspaceNetworks
  logger: Logger
}

/** Throws, saying what to do, unless the daemon is a Swarm manager (only a manager creates services). */
export async function requireSwarmManager(docker: Dockerode): Promise<void> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } }
  if (info.Swarm?.ControlAvailable === true) return
  throw new MiosaError(
    'unavailable',
    `--runtime swarm needs the Docker daemon to be a Swarm manager, and it is not (swarm state: ${info.Swarm?.LocalNodeState || 'inactive'}): run \`docker swarm init\` on this host, or start the platform on a manager node`,
  )
}

export class SwarmInstances implements InstanceDriver {
  private readonly docker: Dockerode
  /** The task containers on this node, read as plain Docker instances. */
  private readonly local: DockerInstances
  /** This node's Swarm id, where tasks are placed. */
  private node: Promise<string> | undefined

  constructor(private readonly options: SwarmInstancesOptions) {
    this.docker = options.docker
    this.local = new DockerInstances(options)
  }

  async start(spec: InstanceSpec): Promise<{ ref: RuntimeRef; address: InstanceAddress }> {
    const image = await this.localImage(spec.image)
    return this.onAppsNetwork(spec.workspaceId, async (network) => {
      const ref = await this.createService(network, `miosa-inst-${spec.instanceId}`, { ...spec, image }, spec.cmd, { [LABEL.instance]: spec.instanceId })
      try {
        const task = await untilStarted(this.docker, ref.id, { timeoutMs: START_TIMEOUT_MS })
        const containerId = containerIdOf(task)
        const status = containerId === undefined ? undefined : await this.local.inspect(dockerRef(containerId))
        if (status?.address !== undefined) return { ref, address: status.address }
        // Swarm may still say running for a moment after the container here has exited: the container is the truth.
        if (status === undefined && !hasEnded(task)) {
          throw new MiosaError('unavailable', `Swarm placed the instance on node ${task.NodeID ?? '?'}, whose task addresses this host cannot reach (one node only, for now)`)
        }
        // Exited (or never ran) before we could learn its address: say why, and leave nothing behind.
        const output: string[] = []
        if (containerId !== undefined) for await (const l of this.local.logs(dockerRef(containerId), { tail: CRASH_TAIL, follow: false })) output.push(l.line)
        const exitCode = status?.exitCode ?? task.Status.ContainerStatus?.ExitCode ?? null
        const why = exitCode === null ? `did not start (${task.Status.Err ?? task.Status.State})` : `exited as soon as it started (exit code ${exitCode})`
        throw new MiosaError('invalid', `the instance ${why}`, { details: { exit_code: exitCode, oom_killed: status?.oomKilled ?? false, output } })
      } catch (error) {
        await this.removeService(ref)
        throw error
      }
    })
  }

  async inspect(ref: RuntimeRef): Promise<InstanceStatus | undefined> {
    try {
      await this.docker.getService(this.serviceId(ref)).inspect()
    } catch (error) {
      if (statusCode(error) === 404) return undefined
      throw error
    }
    return this.statusOf(await currentTask(this.docker, ref.id))
  }

  async stop(ref: RuntimeRef, graceMs: number): Promise<void> {
    // Swarm would stop the task with the service's own grace: stop its container ourselves with this one first.
    const containerId = containerIdOf((await currentTask(this.docker, this.serviceId(ref))) ?? noTask)
    if (containerId !== undefined) {
      try {
        await this.docker.getContainer(containerId).stop({ t: Math.max(0, Math.ceil(graceMs / 1000)) })
      } catch (error) {
        // 304: already stopped; 404: gone, or on another node (Swarm stops it there when the service goes).
        if (statusCode(error) !== 304 && statusCode(error) !== 404) throw error
      }
    }
    await this.removeService(ref)
  }

  async list(): Promise<RuntimeInstance[]> {
    const services = await this.docker.listServices({
      filters: { label: [`${LABEL.kind}=instance`, `${LABEL.platform}=${this.options.platformId()}`] },
    })
    if (services.length === 0) return []
    const tasks = await tasksByService(this.docker, services.map((s) => s.ID))
    const found: RuntimeInstance[] = []
    for (const service of services) {
      const ref = { driver: DRIVER, id: service.ID }
      const labels = service.Spec?.Labels ?? {}
      const deadline = labels[LABEL.oneOffDeadline]
      if (deadline !== undefined) {
        if (Number(deadline) + ORPHAN_GRACE_MS < Date.now()) {
          await this.removeService(ref).catch((error: unknown) => this.options.logger.warn({ err: error, service: service.ID }, 'could not remove an orphaned one-off service'))
        }
        continue
      }
      const instanceId = labels[LABEL.instance]
      if (instanceId === undefined) continue
      found.push({
        ref,
        instanceId,
        organizationId: labels[LABEL.organization] ?? '',
        workspaceId: labels[LABEL.workspace] ?? '',
        deploymentId: labels[LABEL.deployment] ?? '',
        environment: labels[LABEL.environment] ?? '',
        versionId: labels[LABEL.version] ?? '',
        ...(await this.statusOf(tasks.get(service.ID)?.[0])),
      })
    }
    return found
  }

  async listeningSockets(ref: RuntimeRef): Promise<ListeningSocket[]> {
    const containerId = containerIdOf((await currentTask(this.docker, this.serviceId(ref))) ?? noTask)
    return containerId === undefined ? [] : this.local.listeningSockets(dockerRef(containerId))
  }

  logs(ref: RuntimeRef, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncIterable<InstanceLogLine> {
    return this.readLogs(ref, o)
  }

  async runOnce(spec: OneOffSpec): Promise<{ exitCode: number | null }> {
    spec.signal?.throwIfAborted()
    const image = await this.localImage(spec.image)
    const name = `miosa-once-${randomBytes(8).toString('hex')}`
    return this.onAppsNetwork(spec.workspaceId, async (network) => {
      const ref = await this.createService(network, name, { ...spec, image }, spec.cmd, { [LABEL.oneOffDeadline]: String(Date.now() + spec.timeoutMs) })
      // Set from the timer and the signal's listener, read once the task has ended.
      const run: { ended: 'exited' | 'timed out' | 'aborted'; containerId?: string } = { ended: 'exited' }
      const starting = new AbortController()
      const kill = (why: 'timed out' | 'aborted') => {
        if (run.ended === 'exited') run.ended = why
        if (run.containerId === undefined) starting.abort()
        else this.docker.getContainer(run.containerId).kill().catch(() => { /* exited meanwhile: wait() answers anyway */ })
      }
      const timer = setTimeout(() => kill('timed out'), spec.timeoutMs)
      const onAbort = () => kill('aborted')
      spec.signal?.addEventListener('abort', onAbort, { once: true })
      if (spec.signal?.aborted) onAbort()
      const stopOutput = new AbortController()
      const cancelled = () => spec.signal?.reason ?? new MiosaError('unavailable', 'the run was cancelled')
      try {
        let task: SwarmTask
        try {
          task = await untilStarted(this.docker, ref.id, { timeoutMs: START_TIMEOUT_MS, signal: starting.signal })
        } catch (error) {
          if (run.ended === 'aborted') throw cancelled()
          if (run.ended === 'timed out') return { exitCode: null }
          throw error
        }
        run.containerId = containerIdOf(task)
        if (run.containerId === undefined) throw new MiosaError('unavailable', `the one-off run did not start (${task.Status.Err ?? task.Status.State})`)
        if (run.ended !== 'exited') kill(run.ended)
        const output = (async () => {
          for await (const l of this.local.logs(dockerRef(run.containerId ?? ''), { tail: ALL_LINES, follow: true, signal: stopOutput.signal })) spec.onLog(l.line)
        })()
        const result = (await this.docker.getContainer(run.containerId).wait()) as { StatusCode: number }
        await output.catch((error: unknown) => this.options.logger.warn({ err: error }, 'lost the output of a one-off run'))
        if (run.ended === 'aborted') throw cancelled()
        return { exitCode: run.ended === 'timed out' ? null : result.StatusCode }
      } finally {
        clearTimeout(timer)
        spec.signal?.removeEventListener('abort', onAbort)
        stopOutput.abort()
        await this.removeService(ref).catch((error: unknown) => this.options.logger.warn({ err: error, service: name }, 'could not remove a one-off service'))
      }
    })
  }

  /** What the task's container here says; what Swarm says when it is not here (another node) or gone. */
  private async statusOf(task: SwarmTask | undefined): Promise<InstanceStatus> {
    const containerId = task === undefined ? undefined : containerIdOf(task)
    if (containerId !== undefined) {
      const status = await this.local.inspect(dockerRef(containerId))
      if (status !== undefined) return status
    }
    const ended = task !== undefined && hasEnded(task)
    return { running: task?.Status.State === 'running', exitCode: ended ? (task.Status.ContainerStatus?.ExitCode ?? null) : null, oomKilled: false, address: undefined }
  }

  private async *readLogs(ref: RuntimeRef, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncGenerator<InstanceLogLine> {
    const containerId = containerIdOf((await currentTask(this.docker, this.serviceId(ref))) ?? noTask)
    if (containerId === undefined) throw new MiosaError('not_found', 'the instance has no container on this node')
    yield* this.local.logs(dockerRef(containerId), o)
  }

  /** Runs `use` with the workspace's apps network; once more if another process removed that network meanwhile. */
  private async onAppsNetwork<T>(workspaceId: string, use: (network: string) => Promise<T>): Promise<T> {
    try {
      return await this.options.networks.hold(workspaceId, 'apps', use)
    } catch (error) {
      if (!/network .*not found/i.test(String((error as Error).message))) throw error
      this.options.networks.forget(workspaceId, 'apps')
      return this.options.networks.hold(workspaceId, 'apps', use)
    }
  }

  private async createService(
    network: string,
    name: string,
    spec: Omit<InstanceSpec, 'instanceId' | 'cmd'>,
    cmd: string[] | undefined,
    labels: Record<string, string>,
  ): Promise<RuntimeRef> {
    const options = serviceSpec({
      name,
      image: spec.image,
      platformId: this.options.platformId(),
      organizationId: spec.organizationId,
      workspaceId: spec.workspaceId,
      labels: { [LABEL.deployment]: spec.deploymentId, [LABEL.environment]: spec.environment, [LABEL.version]: spec.versionId, ...labels },
      network,
      cmd,
      env: { ...spec.env, PORT: String(INSTANCE_PORT) },
      caBundle: this.options.caBundle,
      cpu: spec.cpu,
      memoryMb: spec.memoryMb,
      pidsLimit: spec.pidsLimit,
    })
    // Only tasks on this node are reachable by the edge here (their bridge is the node's own) and readable (logs, sockets, exit):
    // Swarm places them among this node's resources until the edge reaches other nodes (see the README).
    if (options.TaskTemplate !== undefined) options.TaskTemplate.Placement = { Constraints: [`node.id==${await this.nodeId()}`] }
    try {
      const service = (await this.docker.createService(options)) as Dockerode.Service
      return { driver: DRIVER, id: service.id }
    } catch (error) {
      if (statusCode(error) === 409) throw new MiosaError('conflict', `a service named ${name} already exists`, { cause: error })
      throw error
    }
  }

  private nodeId(): Promise<string> {
    this.node ??= (async () => {
      const id = ((await this.docker.info()) as { Swarm?: { NodeID?: string } }).Swarm?.NodeID
      if (id === undefined || id === '') throw new MiosaError('unavailable', 'this Docker daemon is not part of a Swarm: run `docker swarm init`')
      return id
    })()
    this.node.catch(() => (this.node = undefined))
    return this.node
  }

  /**
   * The release image by its local id. Services name it so, not by a registry digest: no
   * registry is asked, and a node without the image rejects the task (see the README).
   */
  private async localImage(digest: string): Promise<string> {
    const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new MiosaError('invalid', `not a release image digest: ${digest}`)
    const image = `sha256:${hex}`
    try {
      await this.docker.getImage(image).inspect()
    } catch (error) {
      if (statusCode(error) === 404) throw new MiosaError('not_found', `the release image ${image} is not on this Docker host`, { cause: error })
      throw error
    }
    return image
  }

  private async removeService(ref: RuntimeRef): Promise<void> {
    try {
      await this.docker.getService(ref.id).remove()
    } catch (error) {
      if (statusCode(error) !== 404) throw error // already gone
    }
  }

  private serviceId(ref: RuntimeRef): string {
    if (ref.driver !== DRIVER) throw new MiosaError('internal', `a ${ref.driver} instance handed to the swarm driver`)
    return ref.id
  }
}

/** A task that has no container: for the lookups above when the service has no task. */
const noTask: SwarmTask = { ID: '', ServiceID: '', CreatedAt: '', DesiredState: '', Status: { State: 'new' } }

function dockerRef(containerId: string): RuntimeRef {
  return { driver: 'docker', id: containerId }
}
