// The miosa sandbox agent: runs inside every sandbox container (as root, under tini) and
// answers the platform over HTTP/1.1 (exec, files, archives) as ./protocol.ts specifies.
//
// The build bundles it with its modules in inside/ into one CommonJS file,
// dist/runtime/agent/agent.cjs, copied into the container next to the Node.js that runs
// it (see prepareAgentDir). So it imports node: built-ins and ./inside/ only, protocol.ts
// by `import type` (erased when compiled), and nothing may await at the top level. Startup does no work beyond reading its environment and listening: a sandbox
// is ready when the agent answers.
//
// The same file, started with MIOSA_AGENT_FILES_SOCKET, is the file server the agent runs
// as the sandbox user (./inside/file-server.ts).

import { createHash, timingSafeEqual } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { AgentHealth } from './protocol.js'
import { config } from './inside/config.js'
import { execBuffered, execStreaming } from './inside/exec.js'
import { FileServerClient, fileRoute, serveFiles } from './inside/file-server.js'
import { Failure, die, log, readJson, sendError, sendJson } from './inside/http.js'
import { startService, stopService } from './inside/services.js'

// Copy of a protocol.ts constant: this file may take nothing but types from it.
const AGENT_TOKEN_HEADER = 'x-miosa-agent-token'
const VERSION = '1'
const JSON_LIMIT = 1024 * 1024
/** Above the platform's idle socket timeout, so the platform never reuses a socket the agent is closing. */
const KEEP_ALIVE_MS = 65_000

const tokenDigest = digest(config.token)
/** With a sandbox user, the file routes run as that user; without one (a root template, a test on a host), here. */
const files = config.owner === undefined ? undefined : new FileServerClient(config.owner)

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
  const route = `${req.method} ${url.pathname}`
  switch (route) {
    case 'GET /health':
      return sendJson(res, 200, health())
    case 'POST /exec':
      return query.get('stream') === '1' ? execStreaming(req, res) : execBuffered(req, res)
    case 'POST /services':
      return sendJson(res, 200, await startService(await readJson(req, JSON_LIMIT)))
    case 'DELETE /services':
      return sendJson(res, 200, { stopped: stopService(query.get('id') ?? '') })
  }
  if (url.pathname === '/files' || url.pathname.startsWith('/files/') || url.pathname === '/archive') {
    if (files !== undefined) return files.forward(req, res)
    const answer = fileRoute(req, res, route, query)
    if (answer !== undefined) return answer
  }
  throw new Failure(404, 'not_found', `no route ${req.method} ${url.pathname}`)
}

function health(): AgentHealth {
  return { ok: true, version: VERSION, pid: process.pid, uptime_ms: Math.round(performance.now()) }
}

function serveAgent(): void {
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
  // Starts libuv's thread pool now, while pids are free: a fork bomb later cannot stop the agent's own file I/O.
  void stat('/').catch(() => { /* only warms the thread pool: the answer does not matter */ })
  process.on('SIGTERM', () => {
    server.close()
    process.exit(0)
  })
}

if (config.filesSocket === undefined) serveAgent()
else serveFiles(config.filesSocket)

// The agent is the sandbox: one failed request must not take every other one down with it.
process.on('uncaughtException', (error) => log({ level: 'error', msg: 'uncaught exception', error: String(error.stack ?? error) }))
