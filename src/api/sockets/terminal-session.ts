import type { RawData, WebSocket } from 'ws'
import { z } from 'zod'
import type { SandboxOperations } from '../../core/sandbox-operations.js'
import type { SocketContext, SocketSession } from '../route.js'
import { toBuffer } from './exec-session.js'

// A terminal over a WebSocket: raw bytes both ways, a JSON text frame to resize. Output
// waits while the client lags (the PTY is paused), so a flood cannot fill memory.

const resizeMessage = z.strictObject({
  type: z.literal('resize'),
  cols: z.number().int().min(1).max(1000),
  rows: z.number().int().min(1).max(1000),
})

const MAX_UNSENT_BYTES = 1024 * 1024

type Terminal = Awaited<ReturnType<SandboxOperations['terminal']>>

export function terminalSession(terminal: Terminal, ctx: SocketContext<unknown, unknown>): SocketSession {
  return {
    cancel: () => terminal.close(),
    attach: (ws) => run(ws, terminal, ctx),
  }
}

function run(ws: WebSocket, terminal: Terminal, ctx: SocketContext<unknown, unknown>): void {
  const { stream } = terminal
  let closed = false
  const closeBoth = (code = 1000, reason = '') => {
    if (closed) return
    closed = true
    terminal.close()
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason)
  }

  stream.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return
    ws.send(chunk, { binary: true }, () => {
      if (stream.isPaused() && ws.bufferedAmount < MAX_UNSENT_BYTES / 2) stream.resume()
    })
    if (ws.bufferedAmount > MAX_UNSENT_BYTES) stream.pause()
  })
  stream.once('end', () => closeBoth(1000, 'terminal closed'))
  stream.once('close', () => closeBoth(1000, 'terminal closed'))
  stream.once('error', (error) => {
    ctx.log.warn({ err: error }, 'terminal stream failed')
    closeBoth(1011, 'terminal failed')
  })
  ws.once('close', () => closeBoth())
  ctx.signal.addEventListener('abort', () => closeBoth(1001, 'server shutting down'), { once: true })

  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = toBuffer(data)
    if (isBinary) {
      stream.write(bytes)
      return
    }
    // Text frames are control messages; anything that is not one is typed input (what browsers send).
    const resize = parseResize(bytes)
    if (resize === undefined) {
      stream.write(bytes)
      return
    }
    terminal.resize(resize.cols, resize.rows).catch((error: unknown) => ctx.log.warn({ err: error }, 'terminal resize failed'))
  })
}

function parseResize(bytes: Buffer): { cols: number; rows: number } | undefined {
  if (bytes[0] !== 0x7b /* { */) return undefined
  try {
    const parsed = resizeMessage.safeParse(JSON.parse(bytes.toString('utf8')))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}
