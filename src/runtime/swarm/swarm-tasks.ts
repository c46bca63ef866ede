import type Dockerode from 'dockerode'
import { MiosaError } from '../../core/errors.js'

// Reading Swarm's tasks: what the Engine API answers (typed here only as far as we read it),
// and the states a task passes through.

export interface SwarmTask {
  ID: string
  ServiceID: string
  NodeID?: string
  CreatedAt: string
  Status: {
    State: string
    Err?: string
    ContainerStatus?: { ContainerID?: string; ExitCode?: number }
  }
  DesiredState: string
}

/** A task in one of these will not run (again): Swarm keeps it as history. */
const ENDED = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove'])

export function hasEnded(task: SwarmTask): boolean {
  return ENDED.has(task.Status.State)
}

/** Its container, once the node has created one. */
export function containerIdOf(task: SwarmTask): string | undefined {
  const id = task.Status.ContainerStatus?.ContainerID
  return id === undefined || id === '' ? undefined : id
}

/** Every task of these services (all of them when `serviceIds` is undefined), newest first per service. */
export async function tasksByService(docker: Dockerode, serviceIds?: string[]): Promise<Map<string, SwarmTask[]>> {
  let tasks: SwarmTask[]
  try {
    tasks = (await docker.listTasks(serviceIds === undefined ? {} : { filters: { service: serviceIds } })) as SwarmTask[]
  } catch (error) {
    if (statusCode(error) === 404) return new Map() // a service named in the filter is gone: so are its tasks
    throw error
  }
  const byService = new Map<string, SwarmTask[]>()
  for (const task of tasks) byService.set(task.ServiceID, [...(byService.get(task.ServiceID) ?? []), task])
  for (const list of byService.values()) list.sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt))
  return byService
}

/** The service's current task (one replica, never restarted: its only one, or the newest). */
export async function currentTask(docker: Dockerode, serviceId: string): Promise<SwarmTask | undefined> {
  return (await tasksByService(docker, [serviceId])).get(serviceId)?.[0]
}

/** Polls until the service's task has a container and is running, or has ended: Swarm schedules asynchronously. */
export async function untilStarted(docker: Dockerode, serviceId: string, o: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<SwarmTask> {
  const deadline = Date.now() + o.timeoutMs
  for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
    o.signal?.throwIfAborted()
    const task = await currentTask(docker, serviceId)
    if (task !== undefined && ((task.Status.State === 'running' && containerIdOf(task) !== undefined) || hasEnded(task))) return task
    if (Date.now() > deadline) {
      const state = task === undefined ? 'not scheduled' : `${task.Status.State}${task.Status.Err ? `: ${task.Status.Err}` : ''}`
      throw new MiosaError('unavailable', `the Swarm task did not start within ${Math.round(o.timeoutMs / 1000)} s (${state})`)
    }
    await new Promise((r) => setTimeout(r, wait))
  }
}

export function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number } | undefined)?.statusCode
}
