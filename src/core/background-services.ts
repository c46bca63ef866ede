import type { BackgroundService, StartServiceInput } from '../schemas/sandbox-services.js'
import type { RuntimeDriver } from '../runtime/runtime-driver.js'
import type { BackgroundServiceRecord, OrgScope, SandboxRecord, Store } from '../store/store.js'
import { nowIso } from './clock.js'
import { MiosaError, notFound } from './errors.js'
import { newId } from './ids.js'
import type { Log } from './log.js'
import type { SandboxOperations } from './sandbox-operations.js'
import { scopeOf } from './sandboxes.js'
import type { SandboxService } from './sandboxes.js'

// A sandbox's services: commands started in the background (`exec --background`, a dev
// server), recorded with the sandbox and started again each time it resumes (by a call,
// an exec, or a preview request after the idle reaper stopped it), so what the developer
// left running comes back with it. Removing one ends it and forgets it.

/** A sandbox runs at most this many services: each is a process group kept alive. */
export const MAX_SERVICES = 20

export class BackgroundServices {
  constructor(
    private readonly deps: {
      store: Store
      sandboxes: SandboxService
      operations: SandboxOperations
      runtime: RuntimeDriver
      log: Log
    },
  ) {
    deps.sandboxes.onResume((record) => this.restartAll(record))
  }

  /** Starts the command in the background (resuming a paused sandbox first) and records it. */
  async start(organizationId: string, sandboxId: string, input: { cmd: StartServiceInput['cmd']; cwd?: string | undefined; env?: Record<string, string> | undefined }): Promise<BackgroundService> {
    const scope: OrgScope = { organization_id: organizationId }
    const existing = await this.deps.store.backgroundServices.find(scope, { sandbox_id: sandboxId }, MAX_SERVICES + 1)
    if (existing.length >= MAX_SERVICES) {
      throw new MiosaError('conflict', `sandbox ${sandboxId} already runs ${MAX_SERVICES} services; remove one first`, { details: { limit: MAX_SERVICES } })
    }
    const sandbox = await this.deps.sandboxes.ensureRunning(scope, sandboxId)
    this.deps.sandboxes.activity.touch(sandboxId)
    const now = nowIso()
    const record: BackgroundServiceRecord = {
      id: newId('process'),
      organization_id: organizationId,
      sandbox_id: sandboxId,
      cmd: typeof input.cmd === 'string' ? ['sh', '-lc', input.cmd] : input.cmd,
      cwd: input.cwd ?? null,
      env: input.env ?? {},
      log_path: '',
      created_at: now,
      started_at: now,
    }
    const started = await this.run(sandbox, record)
    return toWire(await this.deps.store.backgroundServices.insert({ ...record, log_path: started.logPath }))
  }

  async list(organizationId: string, sandboxId: string): Promise<BackgroundService[]> {
    const scope: OrgScope = { organization_id: organizationId }
    await this.deps.sandboxes.record(scope, sandboxId)
    return (await this.byCreation(scope, sandboxId)).map(toWire)
  }

  /** Ends the service if it is running (a paused sandbox is not woken for that) and forgets it. */
  async remove(organizationId: string, sandboxId: string, serviceId: string): Promise<void> {
    const scope: OrgScope = { organization_id: organizationId }
    const sandbox = await this.deps.sandboxes.record(scope, sandboxId)
    const service = await this.deps.store.backgroundServices.get(scope, serviceId)
    if (service === undefined || service.sandbox_id !== sandboxId) throw notFound('service', serviceId)
    if (sandbox.state === 'running' && sandbox.runtime_ref !== null) await this.deps.runtime.stopService(sandbox.runtime_ref, serviceId)
    await this.deps.store.backgroundServices.delete(scope, serviceId)
    this.deps.log.info({ sandbox_id: sandboxId, service_id: serviceId }, 'sandbox service removed')
  }

  /** Starts every recorded service of a sandbox that has just resumed; one that fails to start is logged and kept. */
  private async restartAll(sandbox: SandboxRecord): Promise<void> {
    const scope = scopeOf(sandbox)
    for (const service of await this.byCreation(scope, sandbox.id)) {
      try {
        await this.run(sandbox, service)
        await this.deps.store.backgroundServices.update(scope, service.id, { started_at: nowIso() })
        this.deps.log.info({ sandbox_id: sandbox.id, service_id: service.id }, 'sandbox service started again after resume')
      } catch (error) {
        this.deps.log.warn({ sandbox_id: sandbox.id, service_id: service.id, err: error }, 'sandbox service could not be started again after resume')
      }
    }
  }

  private async run(sandbox: SandboxRecord, service: BackgroundServiceRecord): Promise<{ logPath: string }> {
    const env = { ...(await this.deps.operations.environmentOf(sandbox)), ...sandbox.env, ...service.env }
    return this.deps.runtime.startService(this.deps.sandboxes.refOf(sandbox), service.id, {
      argv: service.cmd,
      ...(service.cwd === null ? {} : { cwd: service.cwd }),
      env,
    })
  }

  private async byCreation(scope: OrgScope, sandboxId: string): Promise<BackgroundServiceRecord[]> {
    const rows = await this.deps.store.backgroundServices.find(scope, { sandbox_id: sandboxId }, MAX_SERVICES * 2)
    return rows.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id))
  }
}

function toWire(record: BackgroundServiceRecord): BackgroundService {
  const { organization_id: _org, env, ...rest } = record
  return { ...rest, env_keys: Object.keys(env).sort() }
}
