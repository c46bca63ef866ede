// Services: long-running commands (dev servers, `exec --background`) started in the
// background. Each runs in its own session with its output appended to a log file, and
// outlives the request; an exec's end never touches it.

import type { ChildProcess } from 'node:child_process'
import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import type { ServiceStarted } from '../protocol.js'
import { planExec, startFailure } from './exec.js'
import { invalid, log, objectBody } from './http.js'
import { spawnRetrying } from './processes.js'

/** Where a service's stdout and stderr go: one file per service id. */
const SERVICE_LOG_DIR = '/tmp/miosa-services'
const SERVICE_ID = /^[a-z0-9_]{1,64}$/
const services = new Map<string, ChildProcess>()

export async function startService(value: unknown): Promise<ServiceStarted> {
  const body = objectBody(value)
  const id = body.id
  if (typeof id !== 'string' || !SERVICE_ID.test(id)) throw invalid('id must be 1-64 of [a-z0-9_]')
  const plan = await planExec(body)
  stopService(id)
  await mkdir(SERVICE_LOG_DIR, { recursive: true, mode: 0o755 })
  const logPath = join(SERVICE_LOG_DIR, `${id}.log`)
  const logFile = await open(logPath, 'a', 0o644)
  if (plan.user !== undefined) await logFile.chown(plan.user.uid, plan.user.gid)
  try {
    const child = await spawnRetrying(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      detached: true,
      stdio: ['ignore', logFile.fd, logFile.fd],
      ...(plan.user === undefined ? {} : { uid: plan.user.uid, gid: plan.user.gid }),
    })
    const pid = child.pid as number
    child.on('error', () => {})
    child.once('exit', (code, signal) => {
      if (services.get(id) === child) services.delete(id)
      log({ level: 'info', msg: 'service exited', id, code, signal })
    })
    child.unref()
    services.set(id, child)
    return { id, pid, log_path: logPath }
  } catch (error) {
    throw invalid(startFailure(plan.command, error).message)
  } finally {
    await logFile.close()
  }
}

/** Ends a service's whole process group; false when it is not running. */
export function stopService(id: string): boolean {
  const child = services.get(id)
  if (child?.pid === undefined) return false
  services.delete(id)
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
  return true
}
