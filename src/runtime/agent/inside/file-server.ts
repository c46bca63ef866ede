// The file API as the sandbox user. The agent runs as root (it must start commands as any
// user); its file and archive routes are served by a second process of the same agent,
// started as the sandbox user and listening on a Unix socket only that user and root may
// open. The main agent passes those requests through, so a read or write has exactly the
// rights an exec has: /etc/shadow is refused, and what is written belongs to the user.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chown, mkdir, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { extractArchive, sendArchive } from './archives.js'
import type { Owner } from './config.js'
import { FILES_SOCKET_ENV } from './config.js'
import { Failure, die, log, objectBody, readJson, sendError, sendJson } from './http.js'
import { list, move, readFileTo, remove, writeFileFrom } from './files.js'
import { describe, ensureDir, modeParam, pathParam, resolvePath } from './paths.js'

const JSON_LIMIT = 1024 * 1024
/** Root's directory for the socket, given to the sandbox user: nobody else may connect. */
const SOCKET_DIR = '/run/miosa-agent'
const START_MS = 10_000
/** The line the file server prints once it listens. */
const READY = 'miosa file server ready'

/** Answers a file or archive route; undefined when the route is not one. */
export function fileRoute(req: IncomingMessage, res: ServerResponse, route: string, query: URLSearchParams): Promise<void> | undefined {
  switch (route) {
    case 'GET /files':
      return readFileTo(res, pathParam(query))
    case 'PUT /files':
      return writeFileFrom(req, pathParam(query), modeParam(query)).then((stat) => sendJson(res, 200, stat))
    case 'DELETE /files':
      return remove(pathParam(query), query.get('recursive') === '1' || query.get('recursive') === 'true').then(() => sendJson(res, 200, { deleted: true }))
    case 'GET /files/stat':
      return describe(pathParam(query)).then((stat) => sendJson(res, 200, stat))
    case 'GET /files/list':
      return list(pathParam(query)).then((entries) => sendJson(res, 200, { entries }))
    case 'POST /files/mkdir':
      return (async () => {
        const body = objectBody(await readJson(req, JSON_LIMIT))
        const path = resolvePath(body.path, 'path')
        await ensureDir(path)
        sendJson(res, 200, await describe(path))
      })()
    case 'POST /files/move':
      return (async () => {
        const body = objectBody(await readJson(req, JSON_LIMIT))
        const to = await move(resolvePath(body.from, 'from'), resolvePath(body.to, 'to'), body.overwrite === true)
        sendJson(res, 200, await describe(to))
      })()
    case 'GET /archive':
      return sendArchive(res, pathParam(query))
    case 'PUT /archive':
      return (async () => {
        const dir = pathParam(query)
        await extractArchive(req, dir)
        sendJson(res, 200, await describe(dir))
      })()
    default:
      return undefined
  }
}

function unanswered(error: unknown): Failure {
  return new Failure(503, 'internal', `the sandbox user's file server did not answer: ${(error as Error).message}`)
}

/** The file server's own process: serves fileRoute on the socket (no token: only the user and root can reach it). */
export function serveFiles(socketPath: string): void {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent')
    const route = `${req.method} ${url.pathname}`
    const answer = (async () => fileRoute(req, res, route, url.searchParams) ?? Promise.reject(new Failure(404, 'not_found', `no route ${route}`)))()
    answer.catch((error: unknown) => sendError(res, error))
  })
  server.requestTimeout = 0
  server.on('clientError', (_error, socket) => socket.destroy())
  server.on('error', (error) => die(`file server cannot listen: ${error.message}`))
  server.listen(socketPath, () => process.stdout.write(`${READY}\n`))
  // Its parent, the agent, is gone: so is the reason to serve.
  process.on('disconnect', () => process.exit(0))
}

/** The main agent's side: starts the file server as `owner` when first needed (and again if it died), and passes requests through. */
export class FileServerClient {
  private child: ChildProcess | undefined
  private starting: Promise<string> | undefined

  constructor(private readonly owner: Owner) {}

  async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let answer: IncomingMessage
    try {
      answer = await this.send(req, res, await this.ready())
    } catch (error) {
      // Killed by the user (kill -9 -1 as uid 1000, say) and not yet seen to exit: once more, with a new one.
      const code = (error as { code?: string }).code
      if (!(code === 'ECONNREFUSED' || code === 'ENOENT') || req.readableDidRead) throw unanswered(error)
      this.child?.kill('SIGKILL')
      this.starting = undefined
      answer = await this.send(req, res, await this.ready()).catch((again: unknown) => {
        throw unanswered(again)
      })
    }
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    await pipeline(answer, res).catch(() => res.destroy())
  }

  private send(req: IncomingMessage, res: ServerResponse, socketPath: string): Promise<IncomingMessage> {
    // A new connection each time (cheap on a Unix socket): its 'connect' is when the body may flow.
    const upstream = request({ socketPath, method: req.method, path: req.url, headers: req.headers, agent: false })
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      upstream.once('response', resolve)
      upstream.once('error', reject)
    })
    // Not piped before the socket is open, so a refused connection has read nothing of the body.
    upstream.once('socket', (socket) => socket.once('connect', () => req.pipe(upstream)))
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy()
    })
    return response
  }

  private ready(): Promise<string> {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null && this.starting !== undefined) return this.starting
    this.starting = this.start()
    this.starting.catch(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async start(): Promise<string> {
    // Traversable by all, then a directory only the user (and root) may enter.
    await mkdir(SOCKET_DIR, { recursive: true, mode: 0o755 })
    const dir = join(SOCKET_DIR, String(this.owner.uid))
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chown(dir, this.owner.uid, this.owner.gid)
    const socketPath = join(dir, 'files.sock')
    await rm(socketPath, { force: true })
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string], {
      env: { ...process.env, [FILES_SOCKET_ENV]: socketPath },
      uid: this.owner.uid,
      gid: this.owner.gid,
      // Its own session: no exec's sweep ever counts it as one of its processes.
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    })
    this.child = child
    child.once('exit', (code, signal) => log({ level: 'warn', msg: 'file server exited', code, signal }))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('it did not start in time')), START_MS)
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      let text = ''
      const onData = (chunk: Buffer) => {
        text += chunk.toString('utf8')
        if (!text.split('\n').includes(READY)) return
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.stdout?.pipe(process.stdout)
        resolve()
      }
      child.stdout?.on('data', onData)
      child.once('exit', () => reject(new Error('it exited as it started')))
    }).catch((error: unknown) => {
      child.kill('SIGKILL')
      throw new Failure(503, 'internal', `cannot start the sandbox user's file server: ${(error as Error).message}`)
    })
    child.unref()
    child.channel?.unref()
    return socketPath
  }
}
