import type { RawData, WebSocket } from 'ws'
import { MiosaError } from '../../core/errors.js'
import { execSchema } from '../../schemas/sandboxes.js'
import { streamError } from '../error-handler.js'
import type { SocketContext, SocketSession } from '../route.js'
import { parseInput } from '../validation.js'
import { ByteQueue } from './byte-queue.js'

// Exec over a WebSocket: the first text frame is the request; binary frames are stdin
// until {"type":"stdin_end"}; output goes back as JSON text frames, the exit last.

/** Close codes: normal after the exit, policy violation for a bad request, internal error otherwise. */
const CLOSE_NORMAL = 1000
const CLOSE_BAD_REQUEST = 1008
const CLOSE_ERROR = 1011

export function execSession(ctx: SocketContext<{ id: string }, unknown>): SocketSession {
  return {
    cancel: () => {},
    attach: (ws) => run(ws, ctx),
  }
}

function run(ws: WebSocket, ctx: SocketContext<{ id: string }, unknown>): void {
  const aborted = new AbortController()
  const stdin = new ByteQueue({ pause: () => ws.pause(), resume: () => ws.resume() })
  let started = false
  const send = (message: object) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message))
  }
  const fail = (error: unknown, code: number) => {
    send({ type: 'error', error: streamError(error, ctx.requestId, ctx.log) })
    ws.close(code)
  }

  ws.on('close', () => {
    aborted.abort()
    stdin.end()
  })
  ctx.signal.addEventListener('abort', () => aborted.abort(), { once: true })

  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = toBuffer(data)
    if (!started) {
      started = true
      let input
      try {
        if (isBinary) throw new MiosaError('invalid', 'the first message must be a text frame with the exec request (JSON)')
        input = parseInput(execSchema, 'body', parseJson(bytes))
      } catch (error) {
        fail(error, CLOSE_BAD_REQUEST)
        return
      }
      const { stdin: initial, ...request } = input
      if (initial !== undefined) stdin.push(Buffer.from(initial))
      ctx.services.sandboxOps
        .exec(ctx.organizationId, ctx.params.id, request, {
          onStdout: (chunk) => send({ type: 'stdout', data: chunk.toString('base64') }),
          onStderr: (chunk) => send({ type: 'stderr', data: chunk.toString('base64') }),
          stdin,
          signal: aborted.signal,
        })
        .then(
          ({ exit_code, duration_ms, truncated, timed_out }) => {
            send({ type: 'exit', exit_code, duration_ms, truncated, timed_out })
            ws.close(CLOSE_NORMAL)
          },
          (error: unknown) => fail(error, CLOSE_ERROR),
        )
      return
    }
    if (isBinary) {
      stdin.push(bytes)
      return
    }
    let message: { type?: unknown; data?: unknown }
    try {
      message = parseJson(bytes) as { type?: unknown; data?: unknown }
    } catch (error) {
      fail(error, CLOSE_BAD_REQUEST)
      return
    }
    if (message.type === 'stdin_end') stdin.end()
    else if (message.type === 'stdin' && typeof message.data === 'string') stdin.push(Buffer.from(message.data, 'base64'))
    else fail(new MiosaError('invalid', 'message: expected binary stdin, {"type":"stdin","data":base64} or {"type":"stdin_end"}'), CLOSE_BAD_REQUEST)
  })
}

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch (error) {
    throw new MiosaError('invalid', `message: malformed JSON (${(error as Error).message})`, { details: { field: 'message' } })
  }
}
