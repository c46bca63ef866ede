import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { MiosaError } from '../core/errors.js'
import { InflightRequests } from '../core/inflight.js'
import type { RateLimiter } from '../core/rate-limiter.js'
import { admitRequest, admitsUpgrade, ACCESS_COOKIE } from './access.js'
import type { AccessContext } from './access.js'
import type { AppSite, EdgeBackend, PreviewSite } from './edge-backend.js'
import { refusedForRate, refusedUpgradeForRate } from './host-limits.js'
import { createHostRouter } from './host-router.js'
import type { EdgeRoute, HostRouter } from './host-router.js'
import { allowFraming, brandingOf, clientErrorResponse, sendPage, sendStartingPage } from './pages.js'
import { EdgeProxy } from './proxy.js'
import type { ProxyTarget, UpstreamError } from './proxy.js'
import { StaticServer } from './static-server.js'

export { sendPage } from './pages.js'

// The edge listener: routes by Host to sandbox previews and published apps (static
// releases and dynamic apps' runtime instances). Plain node:http, no framework: this is
// the hot path.
//
//   preview: Host → route (host-router) → site (backend.resolve, cached per host for a second)
//        → access (public, ?token=, cookie) → upstream (a paused sandbox resumes there)
//        → touch → proxy (streamed; event streams and WebSockets hold the sandbox awake)
//   app:     Host → route → app (backend.resolveApp, cached the same way), public; then by
//        the active release's kind:
//     static:  release files (backend.releaseFiles, extracted once) → static-server
//     dynamic: instances (backend.appTargets, per request; none: 503 "Starting")
//        → the one with the fewest requests in flight (among ties, the least recently
//          picked: round robin)
//        → proxy (streamed, WebSockets too; counted in `inflight` per instance while in
//          flight, which drains instances) → a connection that fails before any answer
//          goes once to another instance (idempotent requests without a body), else 502
//
// Pages wear the tenant's branding, and never show an upstream's address. Logs never
// carry query strings or cookie values.

export interface EdgeOptions {
  logger: Logger
  baseDomain: string
  backend: EdgeBackend
  /**
   * How long a host's resolve() result is reused (default 1000 ms; 0: never). A site made
   * public or private, or a sandbox destroyed, shows at the edge within this long.
   */
  resolveCacheMs?: number | undefined
  /** How long connecting to a sandbox port or a runtime instance may take (default 5 s). */
  upstreamConnectTimeoutMs?: number | undefined
  /**
   * Requests (and WebSockets) in flight per runtime instance (`host:port`): the edge counts
   * into it and balances by it; the instance service reads it to drain an instance. Pass
   * the platform's one counter; default: a counter of the edge's own.
   */
  inflight?: InflightRequests | undefined
  /** Requests per host (host-limits.ts); none: unlimited. */
  hostLimiter?: RateLimiter | undefined
}

interface Resolved {
  route: EdgeRoute | undefined
  site: PreviewSite | undefined
  app: AppSite | undefined
  expiresAt: number
}

const RESOLVE_CACHE_MAX = 10_000

export function createEdgeServer(options: EdgeOptions): Server {
  const edge = new Edge(options)
  const server = createServer((req, res) => {
    let handling: void | Promise<void>
    try {
      handling = edge.handle(req, res)
    } catch (error) {
      edge.internalError(req, res, error)
      return
    }
    if (handling !== undefined) handling.catch((error: unknown) => edge.internalError(req, res, error))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    edge.upgrade(req, socket, head).catch((error: unknown) => {
      options.logger.warn({ err: error, host: req.headers.host }, 'edge: upgrade failed')
      refuseUpgrade(socket, 502, 'Bad Gateway')
    })
  })
  server.on('clientError', (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    // A response already under way on this connection cannot be followed by another status line.
    const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
    if (!socket.writable || answering) socket.destroy()
    else socket.end(clientErrorResponse(error, error.rawPacket))
  })
  server.on('close', () => edge.close())
  server.keepAliveTimeout = 65_000
  return server
}

class Edge {
  private readonly logger: Logger
  private readonly backend: EdgeBackend
  private readonly route: HostRouter
  private readonly files = new StaticServer()
  /** Release directories by sha256, once extracted (they never change). */
  private readonly releaseDirs = new Map<string, string>()
  private readonly cacheMs: number
  private readonly cache = new Map<string, Resolved>()
  private readonly proxy: EdgeProxy<PreviewSite>
  private readonly appProxy: EdgeProxy<AppSite>
  private readonly inflight: InflightRequests
  /** When each instance address was last picked (a sequence number): ties go to the oldest. */
  private readonly lastPicked = new Map<string, number>()
  private picks = 0
  private readonly access: AccessContext
  private readonly hostLimiter: RateLimiter | undefined

  constructor(options: EdgeOptions) {
    this.logger = options.logger
    this.hostLimiter = options.hostLimiter
    this.backend = options.backend
    this.access = { backend: options.backend, logger: options.logger }
    this.route = createHostRouter(options.baseDomain)
    this.cacheMs = options.resolveCacheMs ?? 1000
    // A rollback must show on the very next request, not after the cache's TTL.
    options.backend.onRouteChange?.(() => this.cache.clear())
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
    this.inflight = options.inflight ?? new InflightRequests()
    this.appProxy = new EdgeProxy<AppSite>(
      {
        onError: (req, res, error, _target, app) => {
          this.instanceFailed(req, res, error, app).catch((e: unknown) => this.internalError(req, res, e))
        },
        retarget: (_req, failed, app) => this.pickInstance(this.knownTargetsOf(app), failed),
      },
      { connectTimeoutMs: options.upstreamConnectTimeoutMs, inflight: this.inflight },
    )
  }

  /** Answers a request; a static file from memory for a host seen in the last second is answered without a promise. */
  handle(req: IncomingMessage, res: ServerResponse): void | Promise<void> {
    if (this.logger.isLevelEnabled('debug')) logWhenDone(this.logger, req, res)
    const url = req.url ?? ''
    if (url.charCodeAt(0) !== 47) {
      sendPage(req, res, { status: 400, title: 'Bad request', message: 'The request target must be a path.' })
      return
    }
    const host = hostOf(req.rawHeaders)
    if (this.hostLimiter !== undefined && refusedForRate(this.hostLimiter, host, req, res)) return
    const resolved = this.cached(host)
    if (resolved?.route?.kind === 'app') return this.serveApp(req, res, host, resolved.app)
    return this.handleSlowly(req, res, host, resolved)
  }

  private async handleSlowly(req: IncomingMessage, res: ServerResponse, host: string | undefined, cached: Resolved | undefined): Promise<void> {
    const resolved = cached ?? (await this.resolve(host))
    if (resolved.route?.kind === 'app') {
      const serving = this.serveApp(req, res, host, resolved.app)
      if (serving !== undefined) await serving
      return
    }
    // Previews are embedded in other sites: their pages (refusals, errors) must show there.
    if (resolved.route?.kind === 'preview') allowFraming(req)
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

  /** A published app: its active release's files (static), its runtime instances (dynamic), or a page (nothing published). */
  private serveApp(req: IncomingMessage, res: ServerResponse, host: string | undefined, app: AppSite | undefined): void | Promise<void> {
    // The hot paths (a known release, a file in memory; a ready instance) run without a promise.
    if (app?.release.kind === 'dynamic') return this.serveDynamic(req, res, app)
    const dir = app?.release.kind === 'static' ? this.releaseDirs.get(app.release.sha256) : undefined
    if (dir !== undefined) return this.files.serve(req, res, dir, app as AppSite, this.appNotFound)
    return this.serveAppSlowly(req, res, host, app)
  }

  /** A dynamic app: to its least busy instance, or a 503 while none is ready. */
  private serveDynamic(req: IncomingMessage, res: ServerResponse, app: AppSite): void | Promise<void> {
    const targets = this.targetsOf(app)
    // Cached targets (the hot path) go on without a promise; unknown ones are read first.
    if (targets instanceof Promise) return targets.then((read) => this.forwardDynamic(req, res, app, read))
    return this.forwardDynamic(req, res, app, targets)
  }

  private forwardDynamic(req: IncomingMessage, res: ServerResponse, app: AppSite, targets: readonly ProxyTarget[]): void | Promise<void> {
    const target = this.pickInstance(targets, undefined)
    if (target === undefined) return this.noInstance(req, res, app)
    this.appProxy.forward(req, res, target, app)
  }

  /**
   * The app's ready instances, or a promise of them when the backend must read them first;
   * none when the backend fails (this also runs inside socket events, where a throw would
   * be uncaught).
   */
  private targetsOf(app: AppSite): readonly ProxyTarget[] | Promise<readonly ProxyTarget[]> {
    try {
      const targets = this.backend.appTargets(app)
      if (!(targets instanceof Promise)) return targets
      return targets.catch((error: unknown) => this.noTargets(error, app))
    } catch (error) {
      return this.noTargets(error, app)
    }
  }

  /** For a retry, inside socket events: only targets known now (none while they are being read). */
  private knownTargetsOf(app: AppSite): readonly ProxyTarget[] {
    try {
      if (this.backend.knownAppTargets !== undefined) return this.backend.knownAppTargets(app)
    } catch (error) {
      return this.noTargets(error, app)
    }
    const targets = this.targetsOf(app)
    return targets instanceof Promise ? [] : targets
  }

  private noTargets(error: unknown, app: AppSite): readonly ProxyTarget[] {
    this.logger.error({ err: error, deploymentId: app.deploymentId }, 'edge: instance targets unavailable')
    return []
  }

  /**
   * The instance with the fewest requests in flight, other than `except`; among ties, the
   * one picked least recently, so ties take turns (sequential requests go round robin, and
   * no pattern of overlapping requests starves one instance). One pass over a short list.
   */
  private pickInstance(targets: readonly ProxyTarget[], except: ProxyTarget | undefined): ProxyTarget | undefined {
    const n = targets.length
    if (n === 1) {
      const only = targets[0] as ProxyTarget
      return except !== undefined && only.port === except.port && only.host === except.host ? undefined : only
    }
    let best: ProxyTarget | undefined
    let bestKey = ''
    let fewest = Infinity
    let oldest = Infinity
    for (let i = 0; i < n; i++) {
      const target = targets[i] as ProxyTarget
      if (except !== undefined && target.port === except.port && target.host === except.host) continue
      const key = InflightRequests.key(target.host, target.port)
      const count = this.inflight.count(key)
      if (count > fewest) continue
      const picked = this.lastPicked.get(key) ?? 0
      if (count < fewest || picked < oldest) {
        best = target
        bestKey = key
        fewest = count
        oldest = picked
      }
    }
    if (best !== undefined) {
      if (this.lastPicked.size >= RESOLVE_CACHE_MAX && !this.lastPicked.has(bestKey)) this.lastPicked.clear()
      this.lastPicked.set(bestKey, ++this.picks)
    }
    return best
  }

  private async noInstance(req: IncomingMessage, res: ServerResponse, app: AppSite): Promise<void> {
    const branding = await brandingOf(this.backend, { workspaceId: app.workspaceId }, this.logger)
    sendPage(req, res, { status: 503, title: 'Starting', message: 'No instance of this app is ready yet. Try again in a moment.', branding }, { 'retry-after': '2' })
  }

  private async instanceFailed(req: IncomingMessage, res: ServerResponse, error: UpstreamError, app: AppSite): Promise<void> {
    this.logger.warn({ deploymentId: app.deploymentId, versionId: app.versionId, code: error.code, message: error.message }, 'edge: app instance request failed')
    const branding = await brandingOf(this.backend, { workspaceId: app.workspaceId }, this.logger)
    sendPage(req, res, { status: 502, title: 'No answer', message: 'This app did not answer. Try again shortly.', branding })
  }

  /** The app's branded 404 (one function for every request: no closure on the hot path). */
  private readonly appNotFound = async (req: IncomingMessage, res: ServerResponse, app: AppSite): Promise<void> => {
    const branding = await brandingOf(this.backend, { workspaceId: app.workspaceId }, this.logger)
    sendPage(req, res, { status: 404, title: 'Page not found', message: 'There is no page at this address.', branding })
  }

  private async serveAppSlowly(req: IncomingMessage, res: ServerResponse, host: string | undefined, app: AppSite | undefined): Promise<void> {
    if (app === undefined) {
      sendPage(req, res, {
        status: 404,
        title: 'Nothing is here yet',
        message: `Nothing is published at ${host?.toLowerCase() || 'this address'} yet.`,
      })
      return
    }
    if (app.release.kind === 'dynamic') {
      await this.serveDynamic(req, res, app)
      return
    }
    const sha256 = app.release.sha256
    let dir = this.releaseDirs.get(sha256)
    if (dir === undefined) {
      try {
        dir = await this.backend.releaseFiles(sha256)
      } catch (error) {
        this.logger.error({ err: error, deploymentId: app.deploymentId, versionId: app.versionId, sha256 }, 'edge: release files unavailable')
        const branding = await brandingOf(this.backend, { workspaceId: app.workspaceId }, this.logger)
        sendPage(req, res, { status: 503, title: 'Unavailable', message: 'This app cannot be served right now. Try again shortly.', branding })
        return
      }
      if (this.releaseDirs.size >= RESOLVE_CACHE_MAX) this.releaseDirs.clear()
      this.releaseDirs.set(sha256, dir)
    }
    await this.files.serve(req, res, dir, app, this.appNotFound)
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', ignore) // until piped: a visitor hanging up mid-check is no crash
    const host = hostOf(req.rawHeaders)
    if (this.hostLimiter !== undefined && refusedUpgradeForRate(this.hostLimiter, host, socket)) return
    const resolved = this.cached(host) ?? (await this.resolve(host))
    if (resolved.route?.kind === 'app') {
      this.upgradeApp(req, socket, head, host, resolved.app)
      return
    }
    const site = resolved.site
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

  /** A WebSocket to a dynamic app: to its least busy instance, once more to another if that one cannot be reached. */
  private upgradeApp(req: IncomingMessage, socket: Duplex, head: Buffer, host: string | undefined, app: AppSite | undefined): void {
    if (app?.release.kind !== 'dynamic') {
      refuseUpgrade(socket, 404, 'Not Found')
      return
    }
    const targets = this.targetsOf(app)
    if (targets instanceof Promise) {
      targets
        .then((read) => this.upgradeToInstance(req, socket, head, host, app, read))
        .catch((error: unknown) => {
          this.logger.error({ err: error, deploymentId: app.deploymentId }, 'edge: upgrade failed')
          socket.destroy()
        })
      return
    }
    this.upgradeToInstance(req, socket, head, host, app, targets)
  }

  private upgradeToInstance(req: IncomingMessage, socket: Duplex, head: Buffer, host: string | undefined, app: AppSite, targets: readonly ProxyTarget[]): void {
    if (socket.destroyed) return
    const first = this.pickInstance(targets, undefined)
    if (first === undefined) {
      refuseUpgrade(socket, 503, 'Service Unavailable')
      return
    }
    let retried = false
    const onError = (error: UpstreamError, failed: ProxyTarget): void => {
      const next = retried || socket.destroyed ? undefined : this.pickInstance(this.knownTargetsOf(app), failed)
      if (next === undefined) {
        this.logger.warn({ deploymentId: app.deploymentId, versionId: app.versionId, code: error.code }, 'edge: app instance unreachable (upgrade)')
        refuseUpgrade(socket, 502, 'Bad Gateway')
        return
      }
      retried = true
      this.appProxy.forwardUpgrade(req, socket, head, next, (e) => onError(e, next))
    }
    this.appProxy.forwardUpgrade(req, socket, head, first, (error) => onError(error, first))
    this.logger.debug({ host, path: pathOf(req.url), deploymentId: app.deploymentId }, 'edge: upgrade')
  }

  close(): void {
    this.proxy.close()
    this.appProxy.close()
    this.lastPicked.clear()
    this.cache.clear()
    this.files.clear()
    this.releaseDirs.clear()
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
    let site: PreviewSite | undefined
    let app: AppSite | undefined
    if (route?.kind === 'app') app = await this.backend.resolveApp({ deploymentSlug: route.deploymentSlug, workspaceSlug: route.workspaceSlug, environmentSlug: route.environmentSlug })
    else if (route !== undefined) {
      site = await this.backend.resolve(route.tenantDomain === undefined ? { slug: route.slug, port: route.port } : { slug: route.slug, port: route.port, tenantDomain: route.tenantDomain })
    }
    const resolved: Resolved = { route, site, app, expiresAt: Date.now() + this.cacheMs }
    if (host !== undefined && this.cacheMs > 0) {
      if (this.cache.size >= RESOLVE_CACHE_MAX) this.cache.clear()
      this.cache.set(host, resolved)
    }
    return resolved
  }

  private async notFound(req: IncomingMessage, res: ServerResponse, host: string | undefined, route: EdgeRoute | undefined): Promise<void> {
    const tenantDomain = route?.kind === 'preview' ? route.tenantDomain : undefined
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
    if (this.backend.waking?.(site.sandboxId) === true) {
      sendStartingPage(req, res, { title: 'Starting', message: `The sandbox is waking up; the server on port ${site.port} is not answering yet. This page reloads until it does.`, branding })
      return
    }
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
