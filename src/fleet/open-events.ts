import type { Logger } from 'pino'
import { InProcessEvents } from '../core/in-process-events.js'
import type { PlatformEvents } from '../core/platform-events.js'
import { PostgresEvents } from './postgres-events.js'

/**
 * The events of a platform on this store: LISTEN/NOTIFY when it is PostgreSQL (other
 * processes may share it: edges, a restarted API), in-process with SQLite (one process owns
 * the file). Call `open` before publishing.
 */
export function eventsFor(databaseUrl: string | undefined, logger: Logger): { events: PlatformEvents; open(): Promise<void> } {
  if (databaseUrl === undefined) {
    const events = new InProcessEvents((error, event) => logger.warn({ err: error, event: event.type }, 'an event listener failed'))
    return { events, open: async () => {} }
  }
  const events = new PostgresEvents({
    connection: databaseUrl,
    onError: (error, context) => logger.warn({ err: error, context }, 'platform events: a problem in the fleet session'),
  })
  return { events, open: () => events.open() }
}
