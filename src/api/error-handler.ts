import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { MiosaError } from '../core/errors.js'
import type { ErrorCode } from '../core/errors.js'

// The one place where error codes become HTTP statuses.
export const STATUS: Record<ErrorCode, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  quota_exceeded: 429,
  internal: 500,
  unavailable: 503,
}

/** Fastify's own errors (body parsing, limits) in our vocabulary. */
function fromFastify(error: FastifyError, bodyLimit: number, request: FastifyRequest): MiosaError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new MiosaError('payload_too_large', `body: larger than the ${bodyLimit}-byte limit`, {
        details: { field: 'body', limit_bytes: bodyLimit },
      })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      // Raw-body routes name the media types they take (route config `accepts`); the rest take JSON.
      const accepts = (request.routeOptions?.config as { accepts?: readonly string[] | '*' } | undefined)?.accepts
      const expected = Array.isArray(accepts) ? accepts : ['application/json']
      return new MiosaError('unsupported_media_type', `body: send it with "Content-Type: ${expected.join('" or "')}"`, {
        details: { field: 'body', accepts: expected },
      })
    }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new MiosaError('invalid', 'body: its length does not match the Content-Length header', {
        details: { field: 'body' },
      })
    default:
      return error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500
        ? new MiosaError('invalid', error.message)
        : undefined
  }
}

/**
 * Errors Fastify's router raises before any route runs (a path that is not valid
 * percent-encoding, a path segment past the router's limit): the same shape as the rest.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const path = request.url.split('?')[0] ?? ''
  const known =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new MiosaError('invalid', 'params: a path segment is too long', { details: { location: 'params' } })
      : error.code === 'FST_ERR_BAD_URL'
        ? new MiosaError('invalid', 'path: not valid percent-encoding', { details: { location: 'path', path: path.slice(0, 200) } })
        : undefined
  if (known === undefined) {
    request.log.error({ err: error }, 'router error')
    const hidden = new MiosaError('internal', `internal error; quote request id ${request.id} when reporting it`)
    return reply.status(500).header('x-request-id', request.id).send(errorBody(hidden, request.id))
  }
  return reply.status(STATUS[known.code]).header('x-request-id', request.id).send(errorBody(known, request.id))
}

/** Node's HTTP parser refusals (before any request exists) with what the client can do about each. */
const CLIENT_ERRORS: Record<string, { status: number; reason: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    reason: 'Request Header Fields Too Large',
    message: 'request: the request line and headers are larger than the server takes (the URL and its query count); send less',
  },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', message: 'request: not received in time' },
}

/**
 * The raw HTTP answer to a request Node's parser refused (`clientError`): headers too large
 * (431), too slow (408), or not HTTP at all (400), with a JSON body in the standard shape.
 */
export function clientErrorResponse(error: NodeJS.ErrnoException, requestId: string): string {
  const known = CLIENT_ERRORS[error.code ?? ''] ?? { status: 400, reason: 'Bad Request', message: 'request: not valid HTTP/1.1' }
  const body = JSON.stringify({ error: { code: 'invalid', message: known.message, details: { parser: error.code ?? null }, request_id: requestId } })
  return [
    `HTTP/1.1 ${known.status} ${known.reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-Id: ${requestId}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n')
}

export function errorBody(error: MiosaError, requestId: string) {
  return { error: { code: error.code, message: error.message, details: error.details ?? null, request_id: requestId } }
}

export function makeErrorHandler(bodyLimit: number) {
  return function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
    const known =
      error instanceof MiosaError ? error : fromFastify(error as FastifyError, bodyLimit, request)
    if (known === undefined || known.code === 'internal') {
      // Internals stay in the log, tied to the request id the client sees.
      request.log.error({ err: error }, 'unhandled error')
      const hidden = new MiosaError('internal', `internal error; quote request id ${request.id} when reporting it`)
      return reply.status(500).send(errorBody(hidden, request.id))
    }
    if (STATUS[known.code] >= 500) request.log.warn({ err: known }, known.message)
    // A refusal for rate (a key's bucket, a full creation queue) says when to come back.
    const retryAfter = (known.details as { retry_after_seconds?: unknown } | null | undefined)?.retry_after_seconds
    if (known.code === 'rate_limited' && typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter))
    return reply.status(STATUS[known.code]).send(errorBody(known, request.id))
  }
}

/**
 * An error that happens after a stream has started (an SSE `error` event, an NDJSON line,
 * a WebSocket message): the same vocabulary, but the status line has already gone out.
 */
export function streamError(
  error: unknown,
  requestId: string,
  log: { error(obj: object, msg: string): void },
): { code: string; message: string; request_id: string } {
  if (error instanceof MiosaError && error.code !== 'internal') return { code: error.code, message: error.message, request_id: requestId }
  log.error({ err: error }, 'stream failed')
  return { code: 'internal', message: `internal error; quote request id ${requestId} when reporting it`, request_id: requestId }
}
