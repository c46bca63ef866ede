import type { Logger } from 'pino'
import { InProcessEvents } from '../core/in-process-events.js'
import type { PlatformEvent, PlatformEvents } from '../core/platform-events.js'
import { PostgresEvents } from './postgres-events.js'

/**
 * The events of a platform on this store: LISTEN/NOTIFY when it is PostgreSQL (other
 * processes may share it: edges, a restarted API), in-process with SQLite (one process owns
 * the file). Call `open` before publishing. `fleet` says whether other processes may be
 * listening (their edges then count requests this process cannot see).
 */
export function eventsFor(databaseUrl: string | undefined, logger: Logger): { events: PlatformEvents; fleet: boolean; open(): Promise<void> } {
  if (databaseUrl === undefined) {
    const events = new InProcessEvents((error, event) => logger.warn({ err: error, event: event.type }, 'an event listener failed'))
    return { events, fleet: false, open: async () => {} }
  }
  const events = new PostgresEvents({
    connection: databaseUrl,
    onError: (error, context) => logger.warn({ err: error, context }, 'platform events: a problem in the fleet session'),
  })
  return { events: neverFailing(events, logger), fleet: true, open: () => events.open() }
}

/**
 * Whoever publishes has already recorded the change in the store; an event other processes
 * did not get only costs them freshness (their caches expire within a second, and a
 * reconnect drops them all), so a failed send is logged rather than failing the change.
 */
function neverFailing(events: PlatformEvents, logger: Logger): PlatformEvents {
  return {
    publish: (event: PlatformEvent) =>
      events.publish(event).catch((error: unknown) => logger.warn({ err: error, event: event.type }, 'an event did not reach the other processes (their caches catch up within a second)')),
    subscribe: (listener) => events.subscribe(listener),
    onGap: (listener) => events.onGap(listener),
    close: () => events.close(),
  }
}
