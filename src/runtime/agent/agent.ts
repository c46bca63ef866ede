// The miosa sandbox agent: runs inside every sandbox container (as root, under tini) and
// answers the platform over HTTP/1.1 (exec, files, archives) as ./protocol.ts specifies.
//
// One self-contained ESM file: the build's dist/runtime/agent/agent.js is copied into the
// container as agent.mjs, next to the Node.js that runs it. So it imports node: built-ins
// only, and protocol.ts by `import type` (erased when compiled); the constants it needs
// are copied below and must stay equal to protocol.ts's. Startup does no work beyond
// reading its environment and listening: a sandbox is ready when the agent answers.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import type { Stats } from 'node:fs'
import { chmod, chown, cp, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, rmdir, stat, unlink } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { AgentError, AgentHealth, ExecEvent, ExecExit, ExecInputEvent, ExecRequest, ExecResponse, FileStat, ServiceStarted } from './protocol.js'

// Copies of protocol.ts constants: this file may take nothing but types from it.
const AGENT_PORT = 49983
const AGENT_TOKEN_HEADER = 'x-miosa-agent-token'
const AGENT_TOKEN_ENV = 'MIOSA_AGENT_TOKEN'
const AGENT_OWNER_ENV = 'MIOSA_AGENT_OWNER'
const AGENT_PORT_ENV = 'MIOSA_AGENT_PORT'

const VERSION = '1'
const WORKSPACE = '/workspace'
const DEFAULT_MAX_OUTPUT = 1024 * 1024
/** After the command exits, how long to wait for its pipes to close (trailing output) before answering. */
const EXIT_GRACE_MS = 25
const JSON_LIMIT = 1024 * 1024
/** A buffered exec carries its stdin in the JSON body. */
const EXEC_JSON_LIMIT = 256 * 1024 * 1024
const LINE_LIMIT = 16 * 1024 * 1024
/** Above the platform's idle socket timeout, so the platform never reuses a socket the agent is closing. */
const KEEP_ALIVE_MS = 65_000

type ErrorCode = AgentError['error']['code']
interface Owner {
  uid: number
  gid: number
}

class Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message)
  }
}

const invalid = (message: string) => new Failure(400, 'invalid', message)

// ---------------------------------------------------------------------------------------
// Configuration: read once, then removed from the environment every command inherits.

const config = readConfig()

function readConfig(): { port: number; token: string; owner: Owner | undefined } {
  const env = process.env
  const token = env[AGENT_TOKEN_ENV] ?? ''
  const portText = env[AGENT_PORT_ENV]
  const ownerText = env[AGENT_OWNER_ENV]
  delete env[AGENT_TOKEN_ENV]
  delete env[AGENT_PORT_ENV]
  delete env[AGENT_OWNER_ENV]
  if (token === '') die(`${AGENT_TOKEN_ENV} is not set`)
  const port = portText === undefined || portText === '' ? AGENT_PORT : Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) die(`${AGENT_PORT_ENV} is not a port: ${portText}`)
  let owner: Owner | undefined
  if (ownerText !== undefined && ownerText !== '') {
    const match = /^(\d+):(\d+)$/.exec(ownerText)
    if (match === null) die(`${AGENT_OWNER_ENV} is not uid:gid: ${ownerText}`)
    owner = { uid: Number(match[1]), gid: Number(match[2]) }
    // Only root may give files away; a non-root agent (on a host, in tests) leaves them as they are.
    if (process.getuid?.() !== 0) owner = undefined
  }
  return { port, token, owner }
}

function die(message: string): never {
  process.stderr.write(`miosa agent: ${message}\n`)
  process.exit(2)
}

function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`)
}

// ---------------------------------------------------------------------------------------
// HTTP

const tokenDigest = digest(config.token)

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Constant-time: both sides are hashed to the same length first. */
function authorized(req: IncomingMessage): boolean {
  const given = req.headers[AGENT_TOKEN_HEADER]
  return typeof given === 'string' && timingSafeEqual(digest(given), tokenDigest)
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!authorized(req)) throw new Failure(401, 'unauthenticated', 'missing or wrong agent token')
  const url = new URL(req.url ?? '/', 'http://agent')
  const query = url.searchParams
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /health':
      return sendJson(res, 200, health())
    case 'POST /exec':
      return query.get('stream') === '1' ? execStreaming(req, res) : execBuffered(req, res)
    case 'GET /files':
      return readFileTo(res, pathParam(query))
    case 'PUT /files':
      return sendJson(res, 200, await writeFileFrom(req, pathParam(query), modeParam(query)))
    case 'DELETE /files':
      await remove(pathParam(query), query.get('recursive') === '1' || query.get('recursive') === 'true')
      return sendJson(res, 200, { deleted: true })
    case 'GET /files/stat':
      return sendJson(res, 200, await describe(pathParam(query)))
    case 'GET /files/list':
      return sendJson(res, 200, { entries: await list(pathParam(query)) })
    case 'POST /files/mkdir': {
      const body = objectBody(await readJson(req, JSON_LIMIT))
      const path = resolvePath(body.path, 'path')
      await ensureDir(path)
      return sendJson(res, 200, await describe(path))
    }
    case 'POST /files/move': {
      const body = objectBody(await readJson(req, JSON_LIMIT))
      const to = await move(resolvePath(body.from, 'from'), resolvePath(body.to, 'to'), body.overwrite === true)
      return sendJson(res, 200, await describe(to))
    }
    case 'POST /services':
      return sendJson(res, 200, await startService(await readJson(req, JSON_LIMIT)))
    case 'DELETE /services':
      return sendJson(res, 200, { stopped: stopService(query.get('id') ?? '') })
    case 'GET /archive':
      return sendArchive(res, pathParam(query))
    case 'PUT /archive': {
      const dir = pathParam(query)
      await extractArchive(req, dir)
      return sendJson(res, 200, await describe(dir))
    }
    default:
      throw new Failure(404, 'not_found', `no route ${req.method} ${url.pathname}`)
  }
}

function health(): AgentHealth {
  return { ok: true, version: VERSION, pid: process.pid, uptime_ms: Math.round(performance.now()) }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError(res: ServerResponse, error: unknown): void {
  // Once the body has begun, only a broken connection tells the platform it is incomplete.
  if (res.headersSent) {
    res.destroy()
    return
  }
  const failure = error instanceof Failure ? error : fsFailure(error)
  if (failure.status >= 500) log({ level: 'error', msg: 'request failed', error: String((error as Error).stack ?? error) })
  const body: AgentError = { error: { code: failure.code, message: failure.message } }
  sendJson(res, failure.status, body)
}

/** Node's errno errors as the protocol's statuses. */
function fsFailure(error: unknown): Failure {
  if (error instanceof Failure) return error
  const { code, path, dest } = error as { code?: string; path?: string; dest?: string }
  const where = path === undefined ? '' : `: ${path}${dest === undefined ? '' : ` -> ${dest}`}`
  switch (code) {
    case 'ENOENT':
      return new Failure(404, 'not_found', `no such file or directory${where}`)
    case 'EEXIST':
      return new Failure(409, 'conflict', `already exists${where}`)
    case 'ENOTEMPTY':
      return new Failure(409, 'conflict', `directory not empty${where}`)
    case 'EISDIR':
      return invalid(`is a directory${where}`)
    case 'ENOTDIR':
      return invalid(`not a directory${where}`)
    case 'ENAMETOOLONG':
      return invalid(`name too long${where}`)
    case 'ELOOP':
      return invalid(`too many levels of symbolic links${where}`)
    case 'EINVAL':
      return invalid(`invalid argument${where}`)
    case 'EACCES':
    case 'EPERM':
      return invalid(`permission denied${where}`)
    case 'EROFS':
      return invalid(`read-only file system${where}`)
    case 'EBUSY':
      return new Failure(409, 'conflict', `resource busy${where}`)
    default:
      return new Failure(500, 'internal', error instanceof Error ? error.message : String(error))
  }
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw invalid(`request body over ${limit} bytes`)
    chunks.push(chunk)
  }
  return parseJson(Buffer.concat(chunks))
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown
  } catch {
    throw invalid('request body is not JSON')
  }
}

function objectBody(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('request body must be a JSON object')
  return value as Record<string, unknown>
}

/** NDJSON values of a byte stream. */
async function* ndjson(stream: Readable): AsyncGenerator<unknown> {
  let buffer: Buffer = Buffer.alloc(0)
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    let newline: number
    while ((newline = buffer.indexOf(10)) !== -1) {
      const line = buffer.subarray(0, newline)
      buffer = buffer.subarray(newline + 1)
      if (line.length > 0) yield parseJson(line)
    }
    if (buffer.length > LINE_LIMIT) throw invalid(`NDJSON line over ${LINE_LIMIT} bytes`)
  }
  if (buffer.length > 0) yield parseJson(buffer)
}

// ---------------------------------------------------------------------------------------
// Paths and ownership

function resolvePath(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(`${name} must be a non-empty path`)
  if (value.includes('\0')) throw invalid(`${name} contains a NUL byte`)
  return resolve(WORKSPACE, value)
}

function pathParam(query: URLSearchParams): string {
  return resolvePath(query.get('path') ?? '', 'path')
}

function modeParam(query: URLSearchParams): number | undefined {
  const mode = query.get('mode')
  if (mode === null || mode === '') return undefined
  if (!/^[0-7]{1,4}$/.test(mode)) throw invalid(`mode must be octal permission bits like 644: ${mode}`)
  return Number.parseInt(mode, 8)
}

/** mkdir -p, giving every directory it creates to the owner. */
async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true })
  if (first === undefined || config.owner === undefined) return
  // mkdir answers the topmost directory it created: everything from there down to dir is new.
  for (let d = dir; ; d = dirname(d)) {
    await chown(d, config.owner.uid, config.owner.gid)
    if (d === first || d === dirname(d)) break
  }
}

async function statIfAny(path: string, follow: boolean): Promise<Stats | undefined> {
  try {
    return follow ? await stat(path) : await lstat(path)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined
    throw error
  }
}

function typeOf(s: Stats): FileStat['type'] {
  if (s.isFile()) return 'file'
  if (s.isDirectory()) return 'dir'
  if (s.isSymbolicLink()) return 'symlink'
  return 'other'
}

async function describe(path: string, known?: Stats): Promise<FileStat> {
  const s = known ?? (await lstat(path))
  const type = typeOf(s)
  const result: FileStat = { name: basename(path) || '/', path, type, size: s.size, mode: s.mode & 0o777, mtime: s.mtime.toISOString() }
  if (type === 'symlink') result.target = await readlink(path)
  return result
}

// ---------------------------------------------------------------------------------------
// Files

async function readFileTo(res: ServerResponse, path: string): Promise<void> {
  const handle = await open(path, 'r')
  let s: Stats
  try {
    s = await handle.stat()
    if (s.isDirectory()) throw invalid(`is a directory: ${path}`)
  } catch (error) {
    await handle.close()
    throw error
  }
  const regular = s.isFile()
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(regular ? { 'content-length': s.size } : {}) })
  if (regular && s.size === 0) {
    await handle.close()
    res.end()
    return
  }
  // A file that shrinks while it is read breaks the connection rather than the next response.
  res.strictContentLength = regular
  const stream = handle.createReadStream(regular ? { start: 0, end: s.size - 1 } : {})
  try {
    await pipeline(stream, res)
  } catch {
    res.destroy()
  }
}

async function writeFileFrom(req: IncomingMessage, requested: string, mode: number | undefined): Promise<FileStat> {
  // Writing to a symlink writes where it points, as an editor would.
  const link = await statIfAny(requested, false)
  const path = link?.isSymbolicLink() === true ? await realpath(requested).catch(() => requested) : requested
  const existing = await statIfAny(path, true)
  if (existing?.isDirectory() === true) throw invalid(`is a directory: ${path}`)
  const dir = dirname(path)
  await ensureDir(dir)
  // Same directory, so the rename is atomic: readers see the old file or the new one, never half.
  const temp = join(dir, `.miosa-${randomBytes(6).toString('hex')}.tmp`)
  try {
    await pipeline(req, createWriteStream(temp, { flags: 'wx', mode: 0o600 }))
    await chmod(temp, mode ?? (existing === undefined ? 0o644 : existing.mode & 0o7777))
    const owner = existing === undefined ? config.owner : { uid: existing.uid, gid: existing.gid }
    if (owner !== undefined) await chown(temp, owner.uid, owner.gid)
    await rename(temp, path)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw error
  }
  return describe(path)
}

async function list(path: string): Promise<FileStat[]> {
  const names = (await readdir(path)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const entries = await Promise.all(
    names.map((name) =>
      describe(join(path, name)).catch((error: unknown) => {
        // Gone between readdir and lstat: it is not in the listing.
        if ((error as { code?: string }).code === 'ENOENT') return undefined
        throw error
      }),
    ),
  )
  return entries.filter((e) => e !== undefined)
}

async function move(from: string, to: string, overwrite: boolean): Promise<string> {
  const source = await lstat(from)
  if (from === to) return to
  if (to.startsWith(`${from}/`)) throw invalid(`cannot move ${from} into itself`)
  const target = await statIfAny(to, false)
  if (target !== undefined) {
    if (!overwrite) throw new Failure(409, 'conflict', `already exists: ${to}`)
    // rename replaces a file in one step; a directory (or a file by a directory) must go first.
    if (target.isDirectory() || source.isDirectory()) await rm(to, { recursive: true, force: true })
  }
  await ensureDir(dirname(to))
  try {
    await rename(from, to)
  } catch (error) {
    if ((error as { code?: string }).code !== 'EXDEV') throw error
    // Another filesystem (a volume, a tmpfs): copy, then remove.
    await cp(from, to, { recursive: true, force: true, preserveTimestamps: true, verbatimSymlinks: true })
    await rm(from, { recursive: true, force: true })
  }
  return to
}

async function remove(path: string, recursive: boolean): Promise<void> {
  if (path === '/') throw invalid('refusing to delete /')
  const s = await lstat(path)
  if (!s.isDirectory()) await unlink(path)
  else if (recursive) await rm(path, { recursive: true, force: true })
  else await rmdir(path)
}

// ---------------------------------------------------------------------------------------
// Archives: GNU tar, which every template image has.

async function sendArchive(res: ServerResponse, dir: string): Promise<void> {
  const s = await stat(dir)
  if (!s.isDirectory()) throw invalid(`not a directory: ${dir}`)
  const tar = spawn('tar', ['-c', '-f', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const stderr = tail(tar)
  res.on('close', () => {
    if (!res.writableFinished) tar.kill('SIGKILL')
  })
  const start = () => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-tar' })
  }
  tar.stdout.on('data', (chunk: Buffer) => {
    start()
    if (!res.write(chunk)) {
      tar.stdout.pause()
      res.once('drain', () => tar.stdout.resume())
    }
  })
  const code = await exitOf(tar)
  // 1 is "a file changed as it was read": the archive is still whole.
  if (code === 0 || code === 1) {
    start()
    res.end()
  } else if (res.headersSent) {
    res.destroy()
  } else {
    throw new Failure(500, 'internal', `tar failed (${code}): ${stderr()}`)
  }
}

async function extractArchive(req: IncomingMessage, dir: string): Promise<void> {
  await ensureDir(dir)
  const s = await stat(dir)
  if (!s.isDirectory()) throw invalid(`not a directory: ${dir}`)
  // Into the owner's directory, tar runs as the owner: everything it creates is theirs. Elsewhere
  // it runs as root, keeping no owner from the archive.
  const owner = config.owner !== undefined && s.uid === config.owner.uid ? config.owner : undefined
  const tar = spawn('tar', ['-x', '-f', '-', '-C', dir, ...(owner === undefined ? ['--no-same-owner'] : [])], {
    cwd: dir,
    stdio: ['pipe', 'ignore', 'pipe'],
    ...(owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }),
  })
  const stderr = tail(tar)
  tar.stdin.on('error', () => {}) // EPIPE when tar stops reading a bad archive
  req.on('error', () => tar.kill('SIGKILL'))
  req.on('aborted', () => tar.kill('SIGKILL'))
  req.pipe(tar.stdin)
  const code = await exitOf(tar)
  if (code !== 0) throw invalid(`tar could not extract the archive (${code}): ${stderr()}`)
}

/** The last few KiB a child wrote to stderr. */
function tail(child: ChildProcess): () => string {
  let text = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4096)
  })
  return () => text.trim()
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('error', (error) => reject(new Failure(500, 'internal', `cannot run tar: ${error.message}`)))
    child.on('close', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))))
  })
}

// ---------------------------------------------------------------------------------------
// Exec

interface ExecPlan {
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
  /** Kills the command's process group, unless it has already exited. */
  kill(): void
}

function optionalInteger(body: Record<string, unknown>, name: string, min: number): number | undefined {
  const value = body[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw invalid(`${name} must be an integer ≥ ${min}`)
  return value
}

async function planExec(value: unknown): Promise<ExecPlan> {
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

/**
 * Starts the command in its own process group. `exit` settles when the command itself exits
 * (plus a short grace for trailing output), not when its pipes close: background children
 * may hold them open for ever. Their output is read and discarded after that, so they never
 * block on a full pipe or die of SIGPIPE.
 */
function run(plan: ExecPlan, sink: ExecSink): Running {
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
  const cannotStart = (error: unknown): number => {
    const code = (error as { code?: string }).code
    const message = code === 'ENOENT' ? `command not found: ${plan.command}` : code === 'EACCES' ? `permission denied: ${plan.command}` : `cannot run ${plan.command}: ${(error as Error).message}`
    emit('stderr', Buffer.from(`miosa: ${message}\n`))
    return code === 'ENOENT' ? 127 : 126
  }

  let child: ChildProcess
  try {
    child = spawn(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(plan.user === undefined ? {} : { uid: plan.user.uid, gid: plan.user.gid }),
    })
  } catch (error) {
    // Some failures (EPERM for uid, say) are thrown rather than emitted.
    const exit = Promise.resolve(result(cannotStart(error)))
    finished = true
    return { stdin: undefined, exit, kill: () => {} }
  }

  const killGroup = () => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  const stdin = child.stdin as Writable
  stdin.on('error', () => {}) // EPIPE: the command does not read its stdin
  child.stdout?.on('data', (chunk: Buffer) => emit('stdout', chunk))
  child.stderr?.on('data', (chunk: Buffer) => emit('stderr', chunk))

  const exit = new Promise<Omit<ExecExit, 'type'>>((resolveExit) => {
    const timer = plan.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true
      killGroup()
    }, plan.timeoutMs)
    const finish = (exitCode: number) => {
      if (finished) return
      clearTimeout(timer)
      const answer = result(exitCode)
      finished = true
      stdin.destroy()
      resolveExit(answer)
    }
    child.on('error', (error) => {
      // After a successful start, 'error' is a failed kill or the like: the exit still comes.
      if (child.pid === undefined) finish(cannotStart(error))
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const status = code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))
      const grace = setTimeout(() => finish(status), EXIT_GRACE_MS)
      child.once('close', () => {
        clearTimeout(grace)
        finish(status)
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

async function execBuffered(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const plan = await planExec(await readJson(req, EXEC_JSON_LIMIT))
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] }
  const running = run(plan, { stdout: (c) => out.stdout.push(c), stderr: (c) => out.stderr.push(c) })
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

async function execStreaming(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  const running = run(plan, {
    stdout: (c) => send({ type: 'stdout', data: c.toString('base64') }),
    stderr: (c) => send({ type: 'stderr', data: c.toString('base64') }),
  })
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

// ---------------------------------------------------------------------------------------
// Services: long-running commands (dev servers) started in the background. Each runs in
// its own process group with its output appended to a log file, and outlives the request.

/** Where a service's stdout and stderr go: one file per service id. */
const SERVICE_LOG_DIR = '/tmp/miosa-services'
const SERVICE_ID = /^[a-z0-9_]{1,64}$/
const services = new Map<string, ChildProcess>()

async function startService(value: unknown): Promise<ServiceStarted> {
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
    const child = spawn(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      detached: true,
      stdio: ['ignore', logFile.fd, logFile.fd],
      ...(plan.user === undefined ? {} : { uid: plan.user.uid, gid: plan.user.gid }),
    })
    const pid = await new Promise<number>((resolveStart, rejectStart) => {
      child.once('spawn', () => resolveStart(child.pid as number))
      child.once('error', rejectStart)
    })
    child.on('error', () => {})
    child.once('exit', (code, signal) => {
      if (services.get(id) === child) services.delete(id)
      log({ level: 'info', msg: 'service exited', id, code, signal })
    })
    child.unref()
    services.set(id, child)
    return { id, pid, log_path: logPath }
  } catch (error) {
    const code = (error as { code?: string }).code
    throw invalid(code === 'ENOENT' ? `command not found: ${plan.command}` : `cannot run ${plan.command}: ${(error as Error).message}`)
  } finally {
    await logFile.close()
  }
}

/** Ends a service's whole process group; false when it is not running. */
function stopService(id: string): boolean {
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

// ---------------------------------------------------------------------------------------
// Start

const server = createServer((req, res) => {
  handle(req, res).catch((error: unknown) => sendError(res, error))
})
server.keepAliveTimeout = KEEP_ALIVE_MS
server.headersTimeout = KEEP_ALIVE_MS + 1_000
// An exec stream's request body stays open as long as the command reads stdin.
server.requestTimeout = 0
server.on('clientError', (_error, socket) => socket.destroy())
server.on('error', (error) => die(`cannot listen: ${error.message}`))
server.listen(config.port, '0.0.0.0', () => {
  const address = server.address()
  log({ level: 'info', msg: 'miosa agent listening', port: typeof address === 'object' && address !== null ? address.port : config.port, version: VERSION })
})

// The agent is the sandbox: one failed request must not take every other one down with it.
process.on('uncaughtException', (error) => log({ level: 'error', msg: 'uncaught exception', error: String(error.stack ?? error) }))
process.on('SIGTERM', () => {
  server.close()
  process.exit(0)
})
