import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { EdgeBackend } from './edge-backend.js'
import { STARTING_RELOAD_S, renderErrorPage, renderPasswordPage, renderStartingPage } from './error-page.js'
import type { Branding, ErrorPage, PasswordPage } from './error-page.js'

// Answers the edge gives itself: HTML pages for browsers, JSON for clients that ask for it.
// Pages carry a strict content security policy (no script, images over https only, forms
// post to the page's own origin) and no referrer, so a token in the URL never leaks.
// No site may frame them, except the pages of a sandbox's preview: customers embed
// previews in their own product, and a visitor there must see why one does not show.

const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src https:; form-action 'self'; base-uri 'none'"

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': `${PAGE_POLICY}; frame-ancestors 'none'`,
}

const EMBEDDABLE_POLICY = `${PAGE_POLICY}; frame-ancestors *`

/** Requests to a sandbox's preview: their pages may be shown in a frame on any site. */
const embeddable = new WeakSet<IncomingMessage>()

/** Lets the pages answering this request (a preview's) be shown inside a frame on another site. */
export function allowFraming(req: IncomingMessage): void {
  embeddable.add(req)
}

const JSON_CODES: Record<number, string> = {
  400: 'invalid',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  429: 'rate_limited',
}

export function sendPage(req: IncomingMessage, res: ServerResponse, page: ErrorPage, headers?: Record<string, string>): void {
  if (wantsJson(req)) {
    const body = JSON.stringify({ error: { code: JSON_CODES[page.status] ?? 'unavailable', message: page.message } })
    send(req, res, page.status, 'application/json; charset=utf-8', body, headers)
  } else {
    send(req, res, page.status, 'text/html; charset=utf-8', renderErrorPage(page), headers)
  }
}

/**
 * A woken sandbox whose server does not answer yet: a browser navigating to it gets a page
 * that reloads itself until the server answers; anything else a 503 to retry after a moment.
 */
export function sendStartingPage(req: IncomingMessage, res: ServerResponse, page: Omit<ErrorPage, 'status'>): void {
  const headers = { 'retry-after': String(STARTING_RELOAD_S) }
  if ((req.headers.accept ?? '').includes('text/html')) {
    send(req, res, 503, 'text/html; charset=utf-8', renderStartingPage(page), headers)
  } else {
    send(req, res, 503, 'application/json; charset=utf-8', JSON.stringify({ error: { code: 'unavailable', message: page.message } }), headers)
  }
}

export function sendPasswordPage(req: IncomingMessage, res: ServerResponse, page: PasswordPage): void {
  if (wantsJson(req)) {
    const body = JSON.stringify({ error: { code: JSON_CODES[page.status] ?? 'unauthenticated', message: page.message, password_required: true } })
    send(req, res, page.status, 'application/json; charset=utf-8', body)
  } else {
    send(req, res, page.status, 'text/html; charset=utf-8', renderPasswordPage(page))
  }
}

const CLIENT_ERRORS: Record<string, { status: number; reason: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'Request Header Fields Too Large', message: 'The request’s address or headers are too large.' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', message: 'The request did not arrive in time.' },
}

/**
 * The raw answer to a request Node's parser refused (`clientError`: headers too large, not
 * HTTP): the neutral page, or the JSON error when the bytes that did arrive asked for JSON.
 */
export function clientErrorResponse(error: NodeJS.ErrnoException, received: Buffer | undefined): string {
  const known = CLIENT_ERRORS[error.code ?? ''] ?? { status: 400, reason: 'Bad Request', message: 'The request is not valid HTTP.' }
  const head = received?.subarray(0, 64 * 1024).toString('latin1') ?? ''
  const accept = /\r\naccept:([^\r\n]*)/i.exec(head)?.[1] ?? ''
  const json = accept.includes('application/json') && !accept.includes('text/html')
  const body = json
    ? JSON.stringify({ error: { code: 'invalid', message: known.message } })
    : renderErrorPage({ status: known.status, title: known.reason, message: known.message })
  const headers = json ? {} : PAGE_HEADERS
  return [
    `HTTP/1.1 ${known.status} ${known.reason}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `content-type: ${json ? 'application/json' : 'text/html'}; charset=utf-8`,
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    '',
    body,
  ].join('\r\n')
}

/** The tenant's branding, or the neutral look when there is none or it cannot be had. */
export async function brandingOf(
  backend: EdgeBackend,
  of: { workspaceId: string } | { tenantDomain: string },
  logger: Logger,
): Promise<Branding | undefined> {
  try {
    return await backend.branding(of)
  } catch (error) {
    logger.warn({ err: error }, 'edge: branding lookup failed; neutral page')
    return undefined
  }
}

function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? ''
  return accept.includes('application/json') && !accept.includes('text/html')
}

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const policy = embeddable.has(req) ? { 'content-security-policy': EMBEDDABLE_POLICY } : undefined
  res.writeHead(status, { ...PAGE_HEADERS, ...policy, ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(req.method === 'HEAD' ? undefined : body)
}
