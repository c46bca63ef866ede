import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { MiosaError } from '../core/errors.js'
import { admitRequest, admitsUpgrade, ACCESS_COOKIE } from './access.js'
import type { AccessContext } from './access.js'
import type { EdgeBackend, HostRoute, PreviewSite } from './edge-backend.js'
import { createHostRouter } from './host-router.js'
import { brandingOf, sendPage } from './pages.js'
import { EdgeProxy } from './proxy.js'
import type { ProxyTarget, UpstreamError } from './proxy.js'

export { sendPage } from './pages.js'

// The edge listener: routes by Host to sandbox previews (static releases and runtime
// instances come with later issues). Plain node:http, no framework: this is the hot path.
//
//   Host → route (host-router) → site (backend.resolve, cached per host for a second)
//        → access (public, ?token=, cookie) → upstream (a paused sandbox resumes there)
//        → touch → proxy (streamed; event streams and WebSockets hold the sandbox awake)
//
// Pages wear the tenant's branding. Logs never carry query strings or cookie values.

export interface EdgeOptions {
  logger: Logger
  baseDomain: string
  backend: EdgeBackend
  /**
   * How long a host's resolve() result is reused (default 1000 ms; 0: never). A site made
   * public or private, or a sandbox destroyed, shows at the edge within this long.
   */
  resolveCacheMs?: number | undefined
  /** How long connecting to a sandbox port may take (default 5 s). */
  upstreamConnectTimeoutMs?: number | undefined
}

interface Resolved {
  route: HostRoute | undefined
  site: PreviewSite | undefined
  expiresAt: number
}

const RESOLVE_CACHE_MAX = 10_000

export function createEdgeServer(options: EdgeOptions): Server {
  const edge = new Edge(options)
  const server = createServer((req, res) => {
    edge.handle(req, res).catch((error: unknown) => edge.internalError(req, res, error))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    edge.upgrade(req, socket, head).catch((error: unknown) => {
      options.logger.warn({ err: error, host: req.headers.host }, 'edge: upgrade failed')
      refuseUpgrade(socket, 502, 'Bad Gateway')
    })
  })
  server.on('close', () => edge.close())
  server.keepAliveTimeout = 65_000
  return server
}

class Edge {
  private readonly logger: Logger
  private readonly backend: EdgeBackend
  private readonly route: (host: string | undefined) => HostRoute | undefined
  private readonly cacheMs: number
  private readonly cache = new Map<string, Resolved>()
  private readonly proxy: EdgeProxy<PreviewSite>
  private readonly access: AccessContext

  constructor(options: EdgeOptions) {
    this.logger = options.logger
    this.backend = options.backend
    this.access = { backend: options.backend, logger: options.logger }
    this.route = createHostRouter(options.baseDomain)
    this.cacheMs = options.resolveCacheMs ?? 1000
    this.proxy = new EdgeProxy<PreviewSite>(
      {
        onError: (req, res, error, _target, site) => {
          this.upstreamFailed(req, res, error, site).catch((e: unknown) => this.internalError(req, res, e))
        },
        onStream: (_req, res, site) => {
          res.once('close', this.backend.hold(site.sandboxId))
        },
      },
      { privateCookie: ACCESS_COOKIE, connectTimeoutMs: options.upstreamConnectTimeoutMs },
    )
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.logger.isLevelEnabled('debug')) logWhenDone(this.logger, req, res)
    const url = req.url ?? ''
    if (url.charCodeAt(0) !== 47) {
      sendPage(req, res, { status: 400, title: 'Bad request', message: 'The request target must be a path.' })
      return
    }
    const host = hostOf(req.rawHeaders)
    const resolved = this.cached(host) ?? (await this.resolve(host))
    const site = resolved.site
    if (site === undefined) {
      await this.notFound(req, res, host, resolved.route)
      return
    }
    if (!site.public && !(await admitRequest(req, res, site, this.access))) return
    const target = await this.upstreamOf(req, res, site)
    if (target === undefined) return
    this.backend.touch(site.sandboxId)
    this.proxy.forward(req, res, target, site)
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', ignore) // until piped: a visitor hanging up mid-check is no crash
    const host = hostOf(req.rawHeaders)
    const { site } = this.cached(host) ?? (await this.resolve(host))
    if (site === undefined) {
      refuseUpgrade(socket, 404, 'Not Found')
      return
    }
    if (!(await admitsUpgrade(req, site, this.backend))) {
      refuseUpgrade(socket, 401, 'Unauthorized')
      return
    }
    let target: ProxyTarget
    try {
      target = await this.backend.upstream(site)
    } catch (error) {
      const code = error instanceof MiosaError ? error.code : undefined
      if (code === undefined) this.logger.warn({ err: error, sandboxId: site.sandboxId }, 'edge: upstream lookup failed')
      refuseUpgrade(socket, code === 'not_found' ? 404 : 503, code === 'not_found' ? 'Not Found' : 'Service Unavailable')
      return
    }
    if (socket.destroyed) return
    this.backend.touch(site.sandboxId)
    const release = this.backend.hold(site.sandboxId)
    socket.once('close', release)
    this.proxy.forwardUpgrade(req, socket, head, target, (error) => {
      this.logger.warn({ sandboxId: site.sandboxId, port: target.port, code: error.code }, 'edge: upstream unreachable (upgrade)')
      refuseUpgrade(socket, 502, 'Bad Gateway')
    })
    this.logger.debug({ host, path: pathOf(req.url), sandboxId: site.sandboxId }, 'edge: upgrade')
  }

  close(): void {
    this.proxy.close()
    this.cache.clear()
  }

  internalError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    this.logger.error({ err: error, host: req.headers.host, path: pathOf(req.url) }, 'edge: request failed')
    if (res.headersSent) res.destroy()
    else sendPage(req, res, { status: 500, title: 'Something went wrong', message: 'The request could not be completed. Try again shortly.' })
  }

  private cached(host: string | undefined): Resolved | undefined {
    if (host === undefined || this.cacheMs === 0) return undefined
    const entry = this.cache.get(host)
    return entry !== undefined && entry.expiresAt > Date.now() ? entry : undefined
  }

  private async resolve(host: string | undefined): Promise<Resolved> {
    const route = this.route(host)
    const site = route === undefined ? undefined : await this.backend.resolve(route)
    const resolved: Resolved = { route, site, expiresAt: Date.now() + this.cacheMs }
    if (host !== undefined && this.cacheMs > 0) {
      if (this.cache.size >= RESOLVE_CACHE_MAX) this.cache.clear()
      this.cache.set(host, resolved)
    }
    return resolved
  }

  private async notFound(req: IncomingMessage, res: ServerResponse, host: string | undefined, route: HostRoute | undefined): Promise<void> {
    const tenantDomain = route?.tenantDomain
    sendPage(req, res, {
      status: 404,
      title: 'Nothing is here',
      message: `No app or preview is published at ${host?.toLowerCase() || 'this address'}.`,
      branding: tenantDomain === undefined ? undefined : await brandingOf(this.backend, { tenantDomain }, this.logger),
    })
  }

  /** Where the site's traffic goes; undefined when a page has been sent instead. */
  private async upstreamOf(req: IncomingMessage, res: ServerResponse, site: PreviewSite): Promise<ProxyTarget | undefined> {
    try {
      return await this.backend.upstream(site)
    } catch (error) {
      const branding = await brandingOf(this.backend, { workspaceId: site.workspaceId }, this.logger)
      if (error instanceof MiosaError && error.code === 'not_found') {
        sendPage(req, res, { status: 404, title: 'Nothing is here', message: 'This preview no longer exists.', branding })
      } else if (error instanceof MiosaError && (error.code === 'conflict' || error.code === 'unavailable')) {
        sendPage(req, res, { status: 503, title: 'Not running', message: `The sandbox is not running: ${error.message}`, branding })
      } else {
        this.logger.warn({ err: error, sandboxId: site.sandboxId }, 'edge: upstream lookup failed')
        sendPage(req, res, { status: 502, title: 'Unreachable', message: 'The sandbox could not be reached. Try again shortly.', branding })
      }
      return undefined
    }
  }

  private async upstreamFailed(req: IncomingMessage, res: ServerResponse, error: UpstreamError, site: PreviewSite): Promise<void> {
    this.logger.warn({ sandboxId: site.sandboxId, port: site.port, code: error.code, message: error.message }, 'edge: upstream request failed')
    const branding = await brandingOf(this.backend, { workspaceId: site.workspaceId }, this.logger)
    const refused = error.code === 'ECONNREFUSED'
    sendPage(req, res, {
      status: 502,
      title: refused ? 'Nothing is listening' : 'No answer',
      message: refused
        ? `Nothing is listening on port ${site.port} in this sandbox. Start a server on port ${site.port}, then reload.`
        : `The server on port ${site.port} in this sandbox did not answer. Try again shortly.`,
      branding,
    })
  }
}

/** The Host header, from the raw headers (node builds `req.headers` lazily: not for this). */
function hostOf(raw: string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 4 && (name === 'Host' || name.toLowerCase() === 'host')) return raw[i + 1]
  }
  return undefined
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return ''
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

function logWhenDone(logger: Logger, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now()
  res.once('close', () => {
    logger.debug(
      { method: req.method, host: req.headers.host, path: pathOf(req.url), status: res.statusCode, ms: Math.round(performance.now() - started), complete: res.writableFinished },
      'edge: request',
    )
  })
}

/** An HTTP answer written on an upgrade's socket, which is then closed. */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return
  const body = `${status} ${reason}\n`
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

function ignore(): void {}
