import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { renderErrorPage } from './error-page.js'
import type { ErrorPage } from './error-page.js'

// The edge listener: routes by Host to sandbox previews, static releases and runtime
// instances (later issues). Plain node:http, no framework: this is the hot path.
// Until a route exists for a host, every request gets the 404 page.

export interface EdgeOptions {
  logger: Logger
  baseDomain: string
}

export function createEdgeServer(options: EdgeOptions): Server {
  const server = createServer((req, res) => {
    handle(req, res, options)
  })
  server.keepAliveTimeout = 65_000
  return server
}

function handle(req: IncomingMessage, res: ServerResponse, options: EdgeOptions): void {
  const host = (req.headers.host ?? '').toLowerCase()
  sendPage(req, res, {
    status: 404,
    title: 'Nothing is here',
    message: `No app or preview is published at ${host || 'this address'}.`,
  })
  options.logger.debug({ host, url: req.url, status: 404 }, 'edge: no route for host')
}

export function sendPage(req: IncomingMessage, res: ServerResponse, page: ErrorPage): void {
  const wantsJson = (req.headers.accept ?? '').includes('application/json') && !(req.headers.accept ?? '').includes('text/html')
  const body = wantsJson
    ? JSON.stringify({ error: { code: page.status === 404 ? 'not_found' : 'unavailable', message: page.message } })
    : renderErrorPage(page)
  res.writeHead(page.status, {
    'content-type': wantsJson ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}
