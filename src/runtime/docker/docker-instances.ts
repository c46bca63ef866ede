import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type Dockerode from 'dockerode'
import type { Logger } from 'pino'
import { MiosaError } from '../../core/errors.js'
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
import { LABEL, containerOptions } from './container-spec.js'
import { listeningSocketsOf } from './container-sockets.js'
import type { WorkspaceNetworks } from './workspace-networks.js'

// Runtime instances as Docker containers, one per instance, on their workspace's apps
// network: the edge on the host reaches them by IP, sandboxes (on the other network)
// cannot. Everything the driver needs to know later is in the container's labels, so a
// restarted platform finds its instances with list() and keeps them running.

const DRIVER = 'docker'
/** Lines of output a start that exited at once reports, to say why. */
const CRASH_TAIL = 20
/** A one-off container still there this long after its deadline lost its platform: list() removes it. */
const ORPHAN_GRACE_MS = 60_000

export interface DockerInstancesOptions {
  docker: Dockerode
  platformId: () => string
  /** Host path of the trusted CA bundle injected into every container. */
  caBundle: string | undefined
  /** Shared with the sandboxes: one subnet allocator and one firewall chain. */
  networks: WorkspaceNetworks
  logger: Logger
}

export class DockerInstances implements InstanceDriver {
  private readonly docker: Dockerode

  constructor(private readonly options: DockerInstancesOptions) {
    this.docker = options.docker
  }

  async start(spec: InstanceSpec): Promise<{ ref: RuntimeRef; address: InstanceAddress }> {
    return this.onAppsNetwork(spec.workspaceId, async (network) => {
      const container = await this.create(network, `miosa-inst-${spec.instanceId}`, spec, spec.cmd, { [LABEL.instance]: spec.instanceId })
      const ref = { driver: DRIVER, id: container.id }
      let info: Dockerode.ContainerInspectInfo
      try {
        await container.start()
        info = await container.inspect()
      } catch (error) {
        await this.remove(ref)
        throw error
      }
      const address = addressOf(info)
      if (address !== undefined) return { ref, address }
      // Exited before we could learn its address: nothing for the edge to reach, so say why and leave nothing behind.
      const output: string[] = []
      for await (const l of this.readLogs(ref, CRASH_TAIL, false)) output.push(l.line)
      await this.remove(ref)
      throw new MiosaError('invalid', `the instance exited as soon as it started (exit code ${info.State.ExitCode})`, {
        details: { exit_code: info.State.ExitCode, oom_killed: info.State.OOMKilled, output },
      })
    })
  }

  async inspect(ref: RuntimeRef): Promise<InstanceStatus | undefined> {
    try {
      return statusOf(await this.container(ref).inspect())
    } catch (error) {
      if (statusCode(error) === 404) return undefined
      throw error
    }
  }

  async stop(ref: RuntimeRef, graceMs: number): Promise<void> {
    try {
      await this.container(ref).stop({ t: Math.max(0, Math.ceil(graceMs / 1000)) })
    } catch (error) {
      // 304: already stopped; 404: already gone.
      if (statusCode(error) !== 304 && statusCode(error) !== 404) throw error
    }
    await this.remove(ref)
  }

  async list(): Promise<RuntimeInstance[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.kind}=instance`, `${LABEL.platform}=${this.options.platformId()}`] },
    })
    const found: RuntimeInstance[] = []
    for (const c of containers) {
      const ref = { driver: DRIVER, id: c.Id }
      const deadline = c.Labels[LABEL.oneOffDeadline]
      if (deadline !== undefined) {
        if (Number(deadline) + ORPHAN_GRACE_MS < Date.now()) await this.remove(ref).catch((err: unknown) => this.options.logger.warn({ err, container: c.Id }, 'could not remove an expired one-off container'))
        continue
      }
      const instanceId = c.Labels[LABEL.instance]
      if (instanceId === undefined) continue
      // Running ones are described by the listing; an exited one's code and OOM flag need an inspect.
      const status = c.State === 'running' || c.State === 'paused' ? runningStatus(c) : await this.inspect(ref)
      if (status === undefined) continue
      found.push({
        ref,
        instanceId,
        organizationId: c.Labels[LABEL.organization] ?? '',
        workspaceId: c.Labels[LABEL.workspace] ?? '',
        deploymentId: c.Labels[LABEL.deployment] ?? '',
        environment: c.Labels[LABEL.environment] ?? '',
        versionId: c.Labels[LABEL.version] ?? '',
        ...status,
      })
    }
    return found
  }

  async listeningSockets(ref: RuntimeRef): Promise<ListeningSocket[]> {
    try {
      return await listeningSocketsOf(this.docker, await this.container(ref).inspect())
    } catch (error) {
      if (statusCode(error) === 404 || statusCode(error) === 409) return [] // gone, or stopped meanwhile
      throw error
    }
  }

  logs(ref: RuntimeRef, o: { tail: number; follow: boolean; signal?: AbortSignal | undefined }): AsyncIterable<InstanceLogLine> {
    return this.readLogs(ref, o.tail, o.follow, o.signal)
  }

  async runOnce(spec: OneOffSpec): Promise<{ exitCode: number | null }> {
    spec.signal?.throwIfAborted()
    const name = `miosa-once-${randomBytes(8).toString('hex')}`
    return this.onAppsNetwork(spec.workspaceId, async (network) => {
      const container = await this.create(network, name, spec, spec.cmd, { [LABEL.oneOffDeadline]: String(Date.now() + spec.timeoutMs) })
      const ref = { driver: DRIVER, id: container.id }
      // Set from the timer and the signal's listener, read once the container has exited.
      const run: { ended: 'exited' | 'timed out' | 'aborted' } = { ended: 'exited' }
      const kill = (why: 'timed out' | 'aborted') => {
        if (run.ended === 'exited') run.ended = why
        container.kill().catch(() => { /* not started yet, or already gone: checked again after start */ })
      }
      const timer = setTimeout(() => kill('timed out'), spec.timeoutMs)
      const onAbort = () => kill('aborted')
      spec.signal?.addEventListener('abort', onAbort, { once: true })
      if (spec.signal?.aborted) onAbort() // aborted while the container was being created
      const stopOutput = new AbortController()
      try {
        await container.start()
        if (run.ended !== 'exited') kill(run.ended)
        const output = (async () => {
          for await (const l of this.readLogs(ref, 'all', true, stopOutput.signal)) spec.onLog(l.line)
        })()
        const result = (await container.wait()) as { StatusCode: number }
        // The log stream ends on its own once the container has; its last lines come just after the exit.
        await output.catch((error: unknown) => this.options.logger.warn({ err: error }, 'lost the output of a one-off run'))
        if (run.ended === 'aborted') throw spec.signal?.reason ?? new MiosaError('unavailable', 'the run was cancelled')
        return { exitCode: run.ended === 'timed out' ? null : result.StatusCode }
      } finally {
        clearTimeout(timer)
        spec.signal?.removeEventListener('abort', onAbort)
        stopOutput.abort()
        await this.remove(ref).catch((error: unknown) => this.options.logger.warn({ err: error, container: name }, 'could not remove a one-off container'))
      }
    })
  }

  /** Runs `use` with the workspace's apps network; once more if another process removed that network meanwhile. */
  private async onAppsNetwork<T>(workspaceId: string, use: (network: string) => Promise<T>): Promise<T> {
    try {
      return await this.options.networks.hold(workspaceId, 'apps', use)
    } catch (error) {
      if (!(statusCode(error) === 404 && /network/i.test(String((error as Error).message)))) throw error
      this.options.networks.forget(workspaceId, 'apps')
      return this.options.networks.hold(workspaceId, 'apps', use)
    }
  }

  private async create(
    network: string,
    name: string,
    spec: Omit<InstanceSpec, 'instanceId' | 'cmd'>,
    cmd: string[] | undefined,
    labels: Record<string, string>,
  ): Promise<Dockerode.Container> {
    const image = imageRef(spec.image)
    try {
      return await this.docker.createContainer(
        containerOptions({
          name,
          image,
          kind: 'instance',
          platformId: this.options.platformId(),
          organizationId: spec.organizationId,
          workspaceId: spec.workspaceId,
          labels: {
            [LABEL.deployment]: spec.deploymentId,
            [LABEL.environment]: spec.environment,
            [LABEL.version]: spec.versionId,
            ...labels,
          },
          network,
          cmd,
          env: { ...spec.env, PORT: String(INSTANCE_PORT) },
          caBundle: this.options.caBundle,
          cpu: spec.cpu,
          memoryMb: spec.memoryMb,
          pidsLimit: spec.pidsLimit,
        }),
      )
    } catch (error) {
      const status = statusCode(error)
      if (status === 409) throw new MiosaError('conflict', `a container named ${name} already exists`, { cause: error })
      if (status === 404 && /image/i.test(String((error as Error).message))) {
        throw new MiosaError('not_found', `the release image ${image} is not on this Docker host`, { cause: error })
      }
      throw error
    }
  }

  /** Its output as lines; `follow` keeps reading until the container ends or `signal` aborts, then ends quietly. */
  private async *readLogs(ref: RuntimeRef, tail: number | 'all', follow: boolean, signal?: AbortSignal): AsyncGenerator<InstanceLogLine> {
    if (signal?.aborted) return
    const container = this.container(ref)
    const options = { stdout: true, stderr: true, timestamps: true, tail: tail === 'all' ? 'all' : Math.max(0, tail) } as Dockerode.ContainerLogsOptions
    const frames = new LogFrames()
    try {
      if (!follow) {
        yield* frames.push(await container.logs({ ...options, follow: false }))
        yield* frames.end()
        return
      }
      const stream = (await container.logs({ ...options, follow: true })) as Readable
      const onAbort = () => stream.destroy()
      signal?.addEventListener('abort', onAbort, { once: true })
      try {
        for await (const chunk of stream) yield* frames.push(chunk as Buffer)
        yield* frames.end()
      } catch (error) {
        if (!signal?.aborted) throw error // destroyed on abort: a clean end
      } finally {
        signal?.removeEventListener('abort', onAbort)
        stream.destroy()
      }
    } catch (error) {
      if (statusCode(error) === 404) throw new MiosaError('not_found', 'the instance container is gone', { cause: error })
      throw error
    }
  }

  private async remove(ref: RuntimeRef): Promise<void> {
    try {
      await this.container(ref).remove({ force: true, v: true })
    } catch (error) {
      // 404: gone; 409: another stop is removing it already.
      if (statusCode(error) !== 404 && statusCode(error) !== 409) throw error
    }
  }

  private container(ref: RuntimeRef): Dockerode.Container {
    if (ref.driver !== DRIVER) throw new MiosaError('internal', `a ${ref.driver} instance handed to the docker driver`)
    return this.docker.getContainer(ref.id)
  }
}

/**
 * Docker's multiplexed log stream: frames of an 8-byte header (stream type, 3 zero bytes,
 * big-endian length) then the payload, here "<RFC 3339 timestamp> <text>". A line longer
 * than Docker's 16 KiB buffer arrives as several frames, each with its own timestamp and
 * only the last ending in \n, so text is kept per stream until its line ends.
 */
class LogFrames {
  private buffer: Buffer = Buffer.alloc(0)
  private readonly pending = { stdout: { timestamp: '', parts: [] as Buffer[] }, stderr: { timestamp: '', parts: [] as Buffer[] } }

  /** The lines completed by this chunk. */
  push(chunk: Buffer): InstanceLogLine[] {
    const lines: InstanceLogLine[] = []
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    while (this.buffer.length >= 8) {
      const size = this.buffer.readUInt32BE(4)
      if (this.buffer.length < 8 + size) break
      const stream = this.buffer[0] === 2 ? 'stderr' : 'stdout'
      const payload = this.buffer.subarray(8, 8 + size)
      this.buffer = this.buffer.subarray(8 + size)
      this.frame(stream, payload, lines)
    }
    return lines
  }

  /** What is left of unfinished lines, once the stream has ended. */
  end(): InstanceLogLine[] {
    return (['stdout', 'stderr'] as const).filter((stream) => this.pending[stream].parts.length > 0).map((stream) => this.line(stream))
  }

  private frame(stream: 'stdout' | 'stderr', payload: Buffer, lines: InstanceLogLine[]): void {
    const space = payload.indexOf(0x20)
    const timestamp = space > 0 ? payload.subarray(0, space).toString('latin1') : ''
    let text = space > 0 ? payload.subarray(space + 1) : payload
    const pending = this.pending[stream]
    for (let newline = text.indexOf(0x0a); newline !== -1; newline = text.indexOf(0x0a)) {
      if (pending.parts.length === 0) pending.timestamp = timestamp
      pending.parts.push(text.subarray(0, newline))
      lines.push(this.line(stream))
      text = text.subarray(newline + 1)
    }
    if (text.length > 0) {
      if (pending.parts.length === 0) pending.timestamp = timestamp
      pending.parts.push(text)
    }
  }

  private line(stream: 'stdout' | 'stderr'): InstanceLogLine {
    const pending = this.pending[stream]
    const line = Buffer.concat(pending.parts).toString('utf8').replace(/\r$/, '')
    pending.parts = []
    return { stream, timestamp: isoTimestamp(pending.timestamp), line }
  }
}

/** Docker's nanosecond RFC 3339 as JavaScript's millisecond ISO 8601. */
function isoTimestamp(raw: string): string {
  const date = new Date(raw)
  return Number.isNaN(date.getTime()) ? new Date().toISOString() : date.toISOString()
}

function imageRef(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new MiosaError('invalid', `not a release image digest: ${digest}`)
  return `sha256:${hex}`
}

function statusOf(info: Dockerode.ContainerInspectInfo): InstanceStatus {
  const running = info.State.Running
  return {
    running,
    // A container created but never started has no exit code yet, whatever Docker's zero says.
    exitCode: running || info.State.Status === 'created' ? null : info.State.ExitCode,
    oomKilled: info.State.OOMKilled,
    address: running ? addressOf(info) : undefined,
  }
}

function runningStatus(c: Dockerode.ContainerInfo): InstanceStatus {
  const ip = Object.values(c.NetworkSettings.Networks).find((n) => n.IPAddress !== '')?.IPAddress
  return { running: true, exitCode: null, oomKilled: false, address: ip === undefined ? undefined : { host: ip, port: INSTANCE_PORT } }
}

/** Its address on the apps network, the only network an instance is on. */
function addressOf(info: Dockerode.ContainerInspectInfo): InstanceAddress | undefined {
  if (!info.State.Running) return undefined
  const ip = Object.values(info.NetworkSettings.Networks).find((n) => n.IPAddress !== '')?.IPAddress
  return ip === undefined ? undefined : { host: ip, port: INSTANCE_PORT }
}

function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number } | undefined)?.statusCode
}
