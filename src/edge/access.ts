import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { EdgeBackend, PreviewSite } from './edge-backend.js'
import { brandingOf, sendPage, sendPasswordPage } from './pages.js'
import { clientIpOf } from './proxy.js'

// Who may see a private preview. In order:
//   1. a public site: anyone;
//   2. `?token=…` in the URL: exchanged with the backend for the access cookie, then a
//      redirect to the same URL without the token (a share token with a password first
//      shows the password page, whose form posts back to the same URL). Previews are
//      embedded in other sites' frames, where browsers keep only a cookie marked
//      `SameSite=None; Secure; Partitioned` (stored for that embedding site alone): the
//      cookie is so wherever the browser takes Secure, over HTTPS and on *.localhost;
//   3. the access cookie, when the backend still admits it;
//   4. otherwise a 401 page.
// Authorization headers are never read here: they belong to the app behind the preview,
// and an API key is no access. A token in the URL that is not a preview or share token
// (an `msk_` key) is refused by the backend like any other invalid token.

export const ACCESS_COOKIE = 'miosa_access'
const COOKIE_PREFIX = `${ACCESS_COOKIE}=`
/** The password form is tiny; anything bigger is not it. */
export const FORM_LIMIT_BYTES = 4096

export interface AccessContext {
  backend: EdgeBackend
  logger: Logger
}

/** Whether the request may go on to `site`; when not, its answer has been sent. */
export async function admitRequest(req: IncomingMessage, res: ServerResponse, site: PreviewSite, ctx: AccessContext): Promise<boolean> {
  if (site.public) return true
  const link = tokenOf(req.url ?? '/')
  if (link !== undefined) {
    await exchangeToken(req, res, site, link, ctx)
    return false
  }
  const cookie = accessCookieOf(req.rawHeaders)
  if (cookie !== undefined && (await ctx.backend.admits(site, cookie))) return true
  sendPage(req, res, {
    status: 401,
    title: 'Link expired',
    message: 'This preview link has expired or is not valid. Ask for a new link.',
    branding: await brandingOf(ctx.backend, { workspaceId: site.workspaceId }, ctx.logger),
  })
  return false
}

/** Whether an upgrade (WebSocket) may go on to `site`: public, or the access cookie admits it. */
export async function admitsUpgrade(req: IncomingMessage, site: PreviewSite, backend: EdgeBackend): Promise<boolean> {
  if (site.public) return true
  const cookie = accessCookieOf(req.rawHeaders)
  return cookie !== undefined && (await backend.admits(site, cookie))
}

async function exchangeToken(req: IncomingMessage, res: ServerResponse, site: PreviewSite, link: TokenLink, ctx: AccessContext): Promise<void> {
  let password: string | undefined
  if (req.method === 'POST' && isForm(req)) {
    const body = await readBody(req, FORM_LIMIT_BYTES)
    if (body === undefined) {
      sendPage(req, res, { status: 413, title: 'Too large', message: 'That form was too large.' }, { connection: 'close' })
      return
    }
    password = new URLSearchParams(body).get('password') || undefined
  }
  const outcome = await ctx.backend.exchange(site, link.token, { password, clientIp: clientIpOf(req) })
  if (outcome.ok) {
    const maxAge = Math.max(0, Math.floor(outcome.maxAgeSeconds))
    // Host-only (no Domain): no other preview shares it.
    const sameSite = securable(req) ? 'SameSite=None; Secure; Partitioned' : 'SameSite=Lax'
    res.writeHead(303, {
      location: link.location,
      'set-cookie': `${COOKIE_PREFIX}${outcome.cookie}; Path=/; HttpOnly; ${sameSite}; Max-Age=${maxAge}`,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'content-length': 0,
    })
    res.end()
    return
  }
  const branding = await brandingOf(ctx.backend, { workspaceId: site.workspaceId }, ctx.logger)
  if (outcome.passwordRequired === true) {
    sendPasswordPage(req, res, { status: outcome.status, message: outcome.message, branding })
    return
  }
  sendPage(req, res, { status: outcome.status, title: REFUSAL_TITLES[outcome.status], message: outcome.message, branding })
}

/**
 * Whether the browser keeps a Secure cookie from this request: over HTTPS, and on
 * localhost names (potentially trustworthy even over plain HTTP). A plain HTTP preview
 * on another name gets a Lax cookie instead: it works top-level, not in a cross-site frame.
 */
function securable(req: IncomingMessage): boolean {
  if ((req.socket as Socket & { encrypted?: boolean }).encrypted === true) return true
  const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '')
  return host === 'localhost' || host.endsWith('.localhost')
}

const REFUSAL_TITLES = { 401: 'Link expired', 403: 'Not allowed', 429: 'Too many attempts' } as const

export interface TokenLink {
  token: string
  /** The same URL without the token: where the visitor goes once the cookie is set. */
  location: string
}

/** The `token` query parameter of a request target, and the target without it; undefined when there is none. */
export function tokenOf(url: string): TokenLink | undefined {
  const q = url.indexOf('?')
  // Cheap test first; a name spelled with escapes (`tok%65n`) still counts.
  if (q === -1 || (!url.includes('token=', q) && !url.includes('%', q))) return undefined
  let token: string | undefined
  let rest = ''
  for (const param of url.slice(q + 1).split('&')) {
    const eq = param.indexOf('=')
    const name = decodeComponent(eq === -1 ? param : param.slice(0, eq))
    if (name === 'token') {
      token ??= decodeComponent(eq === -1 ? '' : param.slice(eq + 1))
      continue
    }
    if (param !== '') rest = rest === '' ? param : `${rest}&${param}`
  }
  if (token === undefined) return undefined
  // A relative redirect to `//host/…` or `/\host/…` would leave the site: keep it on this host.
  let path = url.slice(0, q)
  if (path.length > 1 && (path.charCodeAt(1) === 47 || path.charCodeAt(1) === 92)) path = `/${path.replace(/^[/\\]+/, '')}`
  return { token, location: rest === '' ? path : `${path}?${rest}` }
}

/** The access cookie's value from raw request headers. */
export function accessCookieOf(raw: string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length !== 6 || name.toLowerCase() !== 'cookie') continue
    const header = raw[i + 1] as string
    let at = header.indexOf(COOKIE_PREFIX)
    while (at !== -1) {
      // A cookie name starts the header or follows `;` and spaces (not `xmiosa_access=`).
      let before = at - 1
      while (before >= 0 && header.charCodeAt(before) === 32) before--
      if (before < 0 || header.charCodeAt(before) === 59) {
        const start = at + COOKIE_PREFIX.length
        const end = header.indexOf(';', start)
        const value = (end === -1 ? header.slice(start) : header.slice(start, end)).trim()
        if (value !== '') return value
      }
      at = header.indexOf(COOKIE_PREFIX, at + 1)
    }
  }
  return undefined
}

function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')
}

/** The request body as text, or undefined when it is larger than `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? '0')
  if (declared > limit) return Promise.resolve(undefined)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        req.removeListener('data', onData)
        req.removeListener('end', onEnd)
        req.resume()
        resolve(undefined)
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => resolve(Buffer.concat(chunks).toString('utf8'))
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', reject)
  })
}

function decodeComponent(value: string): string {
  const plus = value.includes('+') ? value.replaceAll('+', ' ') : value
  if (!plus.includes('%')) return plus
  try {
    return decodeURIComponent(plus)
  } catch {
    return plus
  }
}
