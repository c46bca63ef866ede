import type { InstanceDriver, InstanceSpec } from '../../runtime/instance-driver.js'
import type { RuntimeRef } from '../../runtime/runtime-driver.js'
import type { InstanceEventType, InstanceState } from '../../schemas/deployments.js'
import type { DeploymentRecord, InstanceRecord, ReleaseRecord, VersionRecord } from '../../store/store.js'
import { nowIso } from '../clock.js'
import { MiosaError } from '../errors.js'
import { newId } from '../ids.js'
import type { Log } from '../log.js'
import { silentLog } from '../log.js'
import { PortDiscovery, routedMessage } from '../port-discovery.js'
import type { DrainGate } from './drain-gate.js'
import type { RuntimeInstancesDeps } from './instance-deps.js'
import { DEFAULT_INSTANCE_LIMITS } from './instance-deps.js'
import type { InstanceRegistry, Tracked } from './instance-registry.js'

// One instance's life, shared by rollouts, the reconciler and health checks: start it,
// mark it healthy or unhealthy, drain it, stop it. Every change is written to the store
// first; a change of where traffic may go (healthy, unhealthy, draining, another port,
// removed) is then announced as `instances.changed`, so edges re-read their targets.

/** How long an instance gets between SIGTERM and SIGKILL when stopped. */
export const STOP_GRACE_MS = 10_000
/** Lines of output kept with an exit, to say why. */
const EXIT_LOG_LINES = 20
/** How long an edge may still be choosing a just-drained instance (it saw the event, a request was already past the choice) before its drain counts requests. */
const DRAIN_SETTLE_MS = 50

export type InstanceEventInput = {
  type: InstanceEventType
  message: string
  instance_id?: string | undefined
  version_id?: string | undefined
  details?: Record<string, unknown> | undefined
}

export class InstanceLifecycle {
  private readonly ports = new PortDiscovery(() => this.driver())
  private readonly startListeners = new Set<(t: { id: string; key: string; ref: RuntimeRef }) => void>()

  constructor(
    private readonly deps: RuntimeInstancesDeps,
    private readonly registry: InstanceRegistry,
    private readonly drainGate: DrainGate,
  ) {}

  get log(): Log {
    return this.deps.log ?? silentLog
  }

  driver(): InstanceDriver {
    if (this.deps.driver === undefined) throw new MiosaError('unavailable', 'no runtime for dynamic apps is configured')
    return this.deps.driver
  }

  /** Calls `listener` for each instance started from now on (logs that follow); call the result to stop. */
  onStart(listener: (t: { id: string; key: string; ref: RuntimeRef }) => void): () => void {
    this.startListeners.add(listener)
    return () => this.startListeners.delete(listener)
  }

  async start(deployment: DeploymentRecord, environment: string, version: VersionRecord, release: ReleaseRecord): Promise<Tracked> {
    const driver = this.driver()
    const id = newId('instance')
    const { ref, address } = await driver.start({
      ...(await this.specOf(deployment, environment, version, release)),
      instanceId: id,
      cmd: version.plan?.start ?? undefined,
    })
    const now = nowIso()
    const record: InstanceRecord = {
      id,
      organization_id: deployment.organization_id,
      workspace_id: deployment.workspace_id,
      deployment_id: deployment.id,
      environment,
      version_id: version.id,
      version_number: version.version_number,
      state: 'starting',
      runtime_ref: ref,
      address,
      exit_code: null,
      created_at: now,
      updated_at: now,
      healthy_at: null,
    }
    const t = this.registry.add(record, ref, address, deployment.health_check)
    await this.deps.store.instances.insert(record)
    await this.event(deployment, environment, { type: 'started', instance_id: id, version_id: version.id, message: `started instance ${id} of version ${version.version_number}` })
    for (const listener of this.startListeners) listener({ id, key: t.key, ref })
    return t
  }

  async markHealthy(t: Tracked): Promise<void> {
    if (t.record.state === 'healthy') return
    const now = nowIso()
    t.record = { ...t.record, state: 'healthy', healthy_at: now, updated_at: now }
    t.failures = 0
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { state: 'healthy', healthy_at: now, updated_at: now })
    await this.changed(t.record)
    const deployment = await this.deploymentOf(t)
    await this.event(deployment, t.record.environment, { type: 'healthy', instance_id: t.record.id, version_id: t.record.version_id, message: `instance ${t.record.id} is healthy and serving` })
  }

  async setState(t: Tracked, state: InstanceState): Promise<void> {
    const now = nowIso()
    t.record = { ...t.record, state, updated_at: now }
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { state, updated_at: now })
    await this.changed(t.record)
  }

  /** An app listening elsewhere than PORT gets its traffic there (port-discovery.ts); true when it was re-pointed. */
  async followListeningPort(t: Tracked, onLog?: (line: string) => void): Promise<boolean> {
    const port = await this.ports.elsewhere(t.ref, t.address.port).catch((error: unknown) => {
      this.log.warn({ err: error, instance_id: t.record.id }, 'instances: could not read the listening sockets')
      return undefined
    })
    if (port === undefined) return false
    const message = routedMessage(port, t.address.port)
    t.address = { host: t.address.host, port }
    const now = nowIso()
    t.record = { ...t.record, address: t.address, updated_at: now }
    await this.deps.store.instances.update({ organization_id: t.record.organization_id }, t.record.id, { address: t.address, updated_at: now })
    await this.changed(t.record)
    onLog?.(`miosa: ${message}`)
    this.log.info({ instance_id: t.record.id, port }, `instances: ${message}`)
    return true
  }

  /** No new requests from now; stopped once in-flight ones finish (or after the drain timeout). */
  drain(t: Tracked, timeoutSeconds: number, why: string): void {
    if (t.draining) return
    t.draining = true
    void (async () => {
      // Written and announced before anything waits: once edges have the event, they stop choosing it.
      await this.setState(t, 'draining')
      const deployment = await this.deploymentOf(t)
      await this.event(deployment, t.record.environment, { type: 'draining', instance_id: t.record.id, version_id: t.record.version_id, message: `draining instance ${t.record.id}: ${why}` })
      await sleep(DRAIN_SETTLE_MS)
      const idle = await this.drainGate.idle(t.address, timeoutSeconds * 1000)
      await this.remove(t, idle ? 'drained' : `drain timeout (${timeoutSeconds} s) with requests in flight`)
    })().catch((error: unknown) => this.log.warn({ err: error, instance_id: t.record.id }, 'instances: draining failed'))
  }

  /** Stops and forgets the instance, with an event. */
  async remove(t: Tracked, why: string): Promise<void> {
    this.registry.stopping.add(t.record.id)
    this.registry.delete(t)
    // Its row goes first: edges stop choosing it before its container gets SIGTERM.
    await this.deps.store.instances.delete({ organization_id: t.record.organization_id }, t.record.id)
    await this.changed(t.record)
    await this.driver()
      .stop(t.ref, STOP_GRACE_MS)
      .catch((error: unknown) => this.log.warn({ err: error, instance_id: t.record.id }, 'instances: stopping a container failed'))
      .finally(() => this.registry.stopping.delete(t.record.id))
    const deployment = await this.deploymentOf(t).catch(() => undefined)
    if (deployment !== undefined) {
      await this.event(deployment, t.record.environment, { type: 'stopped', instance_id: t.record.id, version_id: t.record.version_id, message: `stopped instance ${t.record.id} (${why})` })
    }
  }

  /** Tells every edge that where this instance's environment sends traffic changed. */
  async changed(record: Pick<InstanceRecord, 'deployment_id' | 'environment'>): Promise<void> {
    await this.deps.events.publish({ type: 'instances.changed', deploymentId: record.deployment_id, environment: record.environment })
  }

  /** What every container of the version runs with: its image, labels, env (read now) and limits. */
  async specOf(deployment: DeploymentRecord, environment: string, version: VersionRecord, release: ReleaseRecord): Promise<Omit<InstanceSpec, 'instanceId' | 'cmd'>> {
    return {
      organizationId: deployment.organization_id,
      workspaceId: deployment.workspace_id,
      deploymentId: deployment.id,
      environment,
      versionId: version.id,
      image: release.sha256,
      env: await this.envOf(deployment, environment, version),
      ...(this.deps.limits ?? DEFAULT_INSTANCE_LIMITS),
    }
  }

  /**
   * An instance's environment, read at each boot: the deployment environment's runtime env
   * vars, then what every instance is told about itself (those names are reserved).
   */
  private async envOf(deployment: DeploymentRecord, environment: string, version: VersionRecord): Promise<Record<string, string>> {
    const values = await this.deps.environmentValues?.resolve({ organization_id: deployment.organization_id }, deployment.id, environment, 'runtime')
    return {
      NODE_ENV: 'production',
      ...values?.env,
      MIOSA_DEPLOYMENT: deployment.slug,
      MIOSA_ENVIRONMENT: environment,
      MIOSA_VERSION: String(version.version_number),
    }
  }

  async releaseOf(version: VersionRecord): Promise<ReleaseRecord> {
    const release = version.release_sha256 === null ? undefined : await this.deps.store.releases.get(version.release_sha256)
    if (release === undefined || release.kind !== 'dynamic') {
      throw new MiosaError('conflict', `version ${version.version_number} (${version.id}) has no dynamic release to run`, { details: { version_id: version.id } })
    }
    return release
  }

  async deploymentOf(t: Tracked): Promise<DeploymentRecord> {
    const deployment = await this.deps.store.deployments.get({ organization_id: t.record.organization_id }, t.record.deployment_id)
    if (deployment === undefined) throw new MiosaError('not_found', `deployment ${t.record.deployment_id} not found`)
    return deployment
  }

  async lastLines(ref: RuntimeRef, count = EXIT_LOG_LINES): Promise<string[]> {
    const lines: string[] = []
    try {
      for await (const entry of this.driver().logs(ref, { tail: count, follow: false })) lines.push(entry.line)
    } catch {
      // The container may be gone already: no lines then.
    }
    return lines.slice(-count)
  }

  async event(deployment: DeploymentRecord, environment: string, e: InstanceEventInput): Promise<void> {
    this.log.info({ deployment_id: deployment.id, environment, instance_id: e.instance_id, event: e.type }, `instances: ${e.message}`)
    await this.deps.store.instanceEvents
      .insert({
        id: newId('instanceEvent'),
        organization_id: deployment.organization_id,
        deployment_id: deployment.id,
        environment,
        instance_id: e.instance_id ?? null,
        version_id: e.version_id ?? null,
        type: e.type,
        message: e.message,
        details: e.details ?? {},
        created_at: nowIso(),
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'instances: recording an event failed'))
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
