import type { Server } from 'node:http'

/**
 * Runs `close` (which stops the listeners and waits for their requests) while keep-alive
 * connections are closed as soon as they go idle; past `timeoutMs` every connection is cut.
 * A connection whose last request finishes during the drain would otherwise idle until its
 * keep-alive timeout.
 */
export async function drainWhile(servers: readonly Server[], timeoutMs: number, close: () => Promise<unknown>): Promise<void> {
  const cut = setTimeout(() => {
    for (const server of servers) server.closeAllConnections()
  }, timeoutMs)
  cut.unref()
  const closeIdle = () => {
    for (const server of servers) server.closeIdleConnections()
  }
  const sweeper = setInterval(closeIdle, 50)
  try {
    closeIdle()
    await close()
  } finally {
    clearInterval(sweeper)
    clearTimeout(cut)
  }
}
