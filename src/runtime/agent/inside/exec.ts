// Exec: one command per request, buffered or streamed. Each runs in its own session and
// process group; when it exits, times out or is cancelled, everything it started is killed
// (./processes.ts). Long-running commands are services (./services.ts), not execs.

import type { ChildProcess } from 'node:child_process'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants } from 'node:os'
import type { Writable } from 'node:stream'
import type { ExecEvent, ExecExit, ExecInputEvent, ExecRequest, ExecResponse } from '../protocol.js'
import type { Owner } from './config.js'
import { WORKSPACE } from './config.js'
import { invalid, ndjson, objectBody, readJson, sendJson } from './http.js'
import { ensureDir, resolvePath, statIfAny } from './paths.js'
import { killSession, spawnRetrying, watch } from './processes.js'

const DEFAULT_MAX_OUTPUT = 1024 * 1024
/** After the command and what it started are gone, how long to wait for its pipes to close (trailing output) before answering. */
const EXIT_GRACE_MS = 25
/** A buffered exec carries its stdin in the JSON body. */
const EXEC_JSON_LIMIT = 256 * 1024 * 1024

export interface ExecPlan {
  command: string
  args: string[]
  cwd: string
  env: NodeJS.ProcessEnv
  timeoutMs: number | undefined
  maxOutput: number
  user: Owner | undefined
  stdin: Buffer | undefined
}

interface ExecSink {
  stdout(chunk: Buffer): void
  stderr(chunk: Buffer): void
}

interface Running {
  /** Undefined when the command could not be started. */
  stdin: Writable | undefined
  exit: Promise<Omit<ExecExit, 'type'>>
  /** Kills the command's process group, unless it has already exited; the exit then kills the rest. */
  kill(): void
}

function optionalInteger(body: Record<string, unknown>, name: string, min: number): number | undefined {
  const value = body[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw invalid(`${name} must be an integer ≥ ${min}`)
  return value
}

export async function planExec(value: unknown): Promise<ExecPlan> {
  const body = objectBody(value) as Record<keyof ExecRequest, unknown>
  const argv = body.argv
  if (!Array.isArray(argv) || argv.length === 0 || argv[0] === '' || !argv.every((a) => typeof a === 'string' && !a.includes('\0'))) {
    throw invalid('argv must be a non-empty array of strings')
  }
  const [command, ...args] = argv as string[]
  const extraEnv = body.env ?? {}
  if (typeof extraEnv !== 'object' || extraEnv === null || Array.isArray(extraEnv) || !Object.values(extraEnv).every((v) => typeof v === 'string')) {
    throw invalid('env must be an object of strings')
  }
  if (body.stdin_base64 !== undefined && typeof body.stdin_base64 !== 'string') throw invalid('stdin_base64 must be a string')
  const timeoutMs = optionalInteger(body, 'timeout_ms', 1)
  const maxOutput = optionalInteger(body, 'max_output_bytes', 0) ?? DEFAULT_MAX_OUTPUT
  const uid = optionalInteger(body, 'uid', 0)
  const gid = optionalInteger(body, 'gid', 0)
  let cwd: string
  if (body.cwd === undefined) {
    cwd = WORKSPACE
    await ensureDir(cwd)
  } else {
    cwd = resolvePath(body.cwd, 'cwd')
    const s = await statIfAny(cwd, true)
    // Checked here: spawn reports a missing cwd as ENOENT, indistinguishable from a missing command.
    if (s === undefined) throw invalid(`cwd does not exist: ${cwd}`)
    if (!s.isDirectory()) throw invalid(`cwd is not a directory: ${cwd}`)
  }
  return {
    command: command as string,
    args,
    cwd,
    env: { ...process.env, ...(extraEnv as Record<string, string>) },
    timeoutMs,
    maxOutput,
    // Never root's group for another user.
    user: uid === undefined ? (gid === undefined ? undefined : { uid: 0, gid }) : { uid, gid: gid ?? uid },
    stdin: body.stdin_base64 === undefined ? undefined : Buffer.from(body.stdin_base64 as string, 'base64'),
  }
}

/** Why a command could not start, for its stderr and exit code (127 not found, 126 otherwise). */
export function startFailure(command: string, error: unknown): { message: string; exitCode: number } {
  const code = (error as { code?: string }).code
  const message =
    code === 'ENOENT'
      ? `command not found: ${command}`
      : code === 'EACCES'
        ? `permission denied: ${command}`
        : code === 'EAGAIN'
          ? `cannot run ${command}: the sandbox is at its limit of processes (EAGAIN)`
          : `cannot run ${command}: ${(error as Error).message}`
  return { message, exitCode: code === 'ENOENT' ? 127 : 126 }
}

/**
 * Starts the command as a session and process group of its own. `exit` settles when the
 * command itself exits and everything it started has been killed (plus a short grace for
 * trailing output), so no pipe it left open can hold the answer.
 */
async function run(plan: ExecPlan, sink: ExecSink): Promise<Running> {
  const started = performance.now()
  let truncated = false
  let timedOut = false
  let finished = false
  const written = { stdout: 0, stderr: 0 }
  const emit = (stream: 'stdout' | 'stderr', data: Buffer) => {
    if (finished) return
    const room = plan.maxOutput - written[stream]
    let chunk = data
    if (chunk.length > room) {
      truncated = true
      chunk = chunk.subarray(0, Math.max(room, 0))
    }
    if (chunk.length === 0) return
    written[stream] += chunk.length
    sink[stream](chunk)
  }
  const result = (exitCode: number): Omit<ExecExit, 'type'> => ({
    exit_code: timedOut ? 124 : exitCode,
    timed_out: timedOut,
    truncated,
    duration_ms: Math.round(performance.now() - started),
  })
  const cannotStart = (error: unknown): Running => {
    const { message, exitCode } = startFailure(plan.command, error)
    emit('stderr', Buffer.from(`miosa: ${message}\n`))
    const exit = Promise.resolve(result(exitCode))
    finished = true
    return { stdin: undefined, exit, kill: () => {} }
  }

  let child: ChildProcess
  try {
    child = await spawnRetrying(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(plan.user === undefined ? {} : { uid: plan.user.uid, gid: plan.user.gid }),
    })
  } catch (error) {
    return cannotStart(error)
  }
  const leader = child.pid as number
  watch(leader)

  const killGroup = () => {
    try {
      process.kill(-leader, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  const stdin = child.stdin as Writable
  stdin.on('error', () => {}) // EPIPE: the command does not read its stdin
  child.stdout?.on('data', (chunk: Buffer) => emit('stdout', chunk))
  child.stderr?.on('data', (chunk: Buffer) => emit('stderr', chunk))
  child.on('error', () => {}) // after a successful start, a failed kill or the like: the exit still comes

  const exit = new Promise<Omit<ExecExit, 'type'>>((resolveExit) => {
    const timer = plan.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true
      killGroup()
    }, plan.timeoutMs)
    let closed = false
    child.once('close', () => {
      closed = true
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const status = code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))
      void killSession(leader).then(() => {
        const finish = () => {
          if (finished) return
          const answer = result(status)
          finished = true
          stdin.destroy()
          resolveExit(answer)
        }
        if (closed) return finish()
        const grace = setTimeout(finish, EXIT_GRACE_MS)
        child.once('close', () => {
          clearTimeout(grace)
          finish()
        })
      })
    })
  })
  return {
    stdin,
    exit,
    kill: () => {
      if (!finished) killGroup()
    },
  }
}

export async function execBuffered(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const plan = await planExec(await readJson(req, EXEC_JSON_LIMIT))
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] }
  let cancelled = false
  res.on('close', () => {
    if (!res.writableFinished) cancelled = true
  })
  const running = await run(plan, { stdout: (c) => out.stdout.push(c), stderr: (c) => out.stderr.push(c) })
  if (cancelled) running.kill()
  res.on('close', () => {
    if (!res.writableFinished) running.kill()
  })
  running.stdin?.end(plan.stdin)
  const exit = await running.exit
  const response: ExecResponse = {
    exit_code: exit.exit_code,
    stdout: Buffer.concat(out.stdout).toString('utf8'),
    stderr: Buffer.concat(out.stderr).toString('utf8'),
    truncated: exit.truncated,
    timed_out: exit.timed_out,
    duration_ms: exit.duration_ms,
  }
  if (!res.destroyed) sendJson(res, 200, response)
}

export async function execStreaming(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const lines = ndjson(req)
  const first = await lines.next()
  if (first.done === true) throw invalid('the exec stream has no request line')
  const plan = await planExec(first.value)
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
  res.flushHeaders()
  res.socket?.setNoDelay(true)
  const send = (event: ExecEvent) => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(event)}\n`)
  }
  const running = await run(plan, {
    stdout: (c) => send({ type: 'stdout', data: c.toString('base64') }),
    stderr: (c) => send({ type: 'stderr', data: c.toString('base64') }),
  })
  if (res.destroyed) running.kill()
  res.on('close', () => {
    if (!res.writableFinished) running.kill()
  })
  // stdin_base64 in the request line comes first, then the stdin events.
  if (plan.stdin !== undefined) running.stdin?.write(plan.stdin)
  void feedStdin(lines, running.stdin)
  try {
    send({ type: 'exit', ...(await running.exit) })
  } catch (error) {
    running.kill()
    send({ type: 'error', message: error instanceof Error ? error.message : String(error) })
  }
  res.end()
}

/** Stdin events into the command; the rest of the request body is read to its end regardless. */
async function feedStdin(lines: AsyncGenerator<unknown>, stdin: Writable | undefined): Promise<void> {
  const open = (): boolean => stdin !== undefined && !stdin.destroyed && !stdin.writableEnded
  try {
    for await (const value of lines) {
      if (stdin === undefined || !open()) continue
      const event = value as ExecInputEvent
      if (event.type === 'stdin' && typeof event.data === 'string') {
        if (!stdin.write(Buffer.from(event.data, 'base64'))) await drained(stdin)
      } else if (event.type === 'stdin_end') {
        stdin.end()
      }
    }
  } catch {
    // A broken request: the response's close kills the command.
  }
  if (open()) stdin?.end()
}

function drained(stream: Writable): Promise<void> {
  return new Promise((resolveDrain) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolveDrain()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}
