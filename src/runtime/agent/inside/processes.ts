// Process containment: what an exec started ends with it. Each exec is its own session
// (spawned detached: setsid), so everything it forks shares its session id unless it calls
// setsid itself. One that does is found as a descendant of the exec's processes: /proc is
// looked at every WATCH_MS while execs run, so it is known even after its parent exits and
// it is re-parented to init. No cgroup: Docker mounts the container's cgroup tree
// read-only, so /proc is the record.

import { spawn } from 'node:child_process'
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** Sweeps until nothing is left, or this long (a process stuck in the kernel cannot be killed sooner). */
const SWEEP_MS = 3_000
/** A spawn refused for want of pids (a fork bomb's leftovers dying) is tried again for this long. */
const SPAWN_RETRY_MS = 3_000
/** How often the processes of running execs are looked at, to remember the ones that leave their session. */
const WATCH_MS = 50

interface Proc {
  pid: number
  ppid: number
  pgrp: number
  session: number
  /** Clock ticks after boot: with the pid, names one process even after pids wrap around. */
  start: string
}

/** Running execs (by their first process) → the processes seen among theirs: pid → start. */
const watched = new Map<number, Map<number, string>>()
let watcher: NodeJS.Timeout | undefined

const self = readProc(process.pid)

/** Every live process: /proc/<pid>/stat, fields after the command name (which may hold spaces and parentheses). */
function processes(): Proc[] {
  const table: Proc[] = []
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return table
  }
  for (const name of names) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid <= 0) continue
    const proc = readProc(pid)
    if (proc !== undefined) table.push(proc)
  }
  return table
}

function readProc(pid: number): Proc | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined // gone meanwhile
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // Zombies are already dead: killing them does nothing, their parent (or tini) reaps them.
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined
  return { pid, ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]), start: fields[19] ?? '' }
}

/** The processes of the session `leader` began, those seen among them before, and all their descendants wherever they went. */
function membersOf(leader: number, table: Proc[]): Proc[] {
  const members = new Map<number, Proc>()
  const seen = watched.get(leader)
  for (const p of table) {
    if (p.session === leader || p.pgrp === leader || p.pid === leader || seen?.get(p.pid) === p.start) members.set(p.pid, p)
  }
  const children = new Map<number, Proc[]>()
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p])
  const queue = [...members.values()]
  for (let p = queue.pop(); p !== undefined; p = queue.pop()) {
    for (const child of children.get(p.pid) ?? []) {
      if (members.has(child.pid)) continue
      members.set(child.pid, child)
      queue.push(child)
    }
  }
  // Never the agent itself, its group, or init.
  members.delete(process.pid)
  members.delete(1)
  return [...members.values()].filter((p) => self === undefined || p.pgrp !== self.pgrp)
}

function signal(target: number): void {
  try {
    process.kill(target, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** Starts remembering what the exec whose first process is `leader` starts. */
export function watch(leader: number): void {
  watched.set(leader, new Map())
  watcher ??= setInterval(look, WATCH_MS)
  watcher.unref()
}

function look(): void {
  const table = processes()
  for (const [leader, seen] of watched) for (const p of membersOf(leader, table)) seen.set(p.pid, p.start)
}

/**
 * SIGKILLs everything the exec whose first process was `leader` started, until none is left.
 * Whole process groups are killed at once, so a fork bomb's processes cannot outrun the sweep:
 * a fork with a fatal signal pending fails. Answers how many processes it found.
 */
export async function killSession(leader: number): Promise<number> {
  const seen = new Set<number>()
  const deadline = performance.now() + SWEEP_MS
  for (let round = 0; performance.now() < deadline; round++) {
    const members = membersOf(leader, processes())
    if (members.length === 0) break
    const groups = new Set(members.map((p) => p.pgrp).filter((g) => g > 1 && g !== self?.pgrp))
    for (const group of groups) signal(-group)
    for (const p of members) {
      seen.add(p.pid)
      signal(p.pid)
    }
    // Killed processes take a moment to exit; the first rounds come quickly.
    await sleep(round < 3 ? 1 : 10)
  }
  watched.delete(leader)
  if (watched.size === 0 && watcher !== undefined) {
    clearInterval(watcher)
    watcher = undefined
  }
  return seen.size
}

/** spawn, tried again for a while when the kernel refuses a fork (EAGAIN: the pids limit); rejects with spawn's error. */
export async function spawnRetrying(command: string, args: string[], options: SpawnOptions): Promise<ChildProcess> {
  const deadline = performance.now() + SPAWN_RETRY_MS
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    const child = spawn(command, args, options)
    // A failed fork leaves no pid; its 'error' event is still to come.
    if (child.pid !== undefined) return child
    const error = await new Promise<Error>((resolve) => child.once('error', resolve))
    if ((error as { code?: string }).code !== 'EAGAIN' || performance.now() > deadline) throw error
    await sleep(wait)
  }
}
