import { WebSocket } from 'ws'
import { MiosaApiError, MiosaError } from '../sdk/index.js'
import type { SocketTarget } from '../sdk/index.js'
import { isErrorCode } from '../core/errors.js'

// Opening the API's WebSocket routes (exec with stdin, terminals) from the CLI. The SDK
// gives the URL and headers; a refusal comes back as an ordinary HTTP error response,
// turned here into the same MiosaApiError the SDK throws for any other call.

export function openSocket(target: SocketTarget): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target.url, { headers: target.headers, perMessageDeflate: false })
    ws.once('open', () => {
      ws.removeAllListeners('error')
      resolve(ws)
    })
    ws.once('error', (error: Error & { code?: string }) => {
      const reason = error.code ?? error.message
      reject(new MiosaError('unavailable', `cannot reach the miosa API at ${new URL(target.url).origin.replace(/^ws/, 'http')}: ${reason}`, { cause: error }))
    })
    ws.once('unexpected-response', (_request, response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => {
        ws.terminate()
        const status = response.statusCode ?? 0
        const requestId = response.headers['x-request-id']
        let body: { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined
        try {
          body = JSON.parse(text) as typeof body
        } catch {
          body = undefined
        }
        const code = isErrorCode(body?.error?.code) ? body.error.code : status === 404 ? 'not_found' : 'unavailable'
        const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${status}: ${text.slice(0, 200)}`
        reject(new MiosaApiError(code, message, status, typeof requestId === 'string' ? requestId : undefined, body?.error?.details))
      })
    })
  })
}

/** Resolves once the socket has closed, with its close code. */
export function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) resolve(1006)
    else ws.once('close', (code: number) => resolve(code))
  })
}
