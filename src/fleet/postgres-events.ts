import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { MiosaError } from '../core/errors.js'
import type { PlatformEvent, PlatformEvents } from '../core/platform-events.js'
import { type ConnectionConfig, DedicatedConnection } from './dedicated-connection.js'
import { decodeEvent, encodeEvent } from './event-payloads.js'

// PlatformEvents for a fleet, over PostgreSQL LISTEN/NOTIFY. Each process keeps one
// session of its own that listens on one channel, and one that publishes (separate, so a
// listener that reconnects never holds up a publish). This process's subscribers get its
// events synchronously at publish, as in a single process; the copy PostgreSQL echoes
// back carries this process's origin id and is ignored. One publishing session, used one
// event at a time, keeps each publisher's events in order for every receiver.

export interface PostgresEventsOptions {
  /** A connection string or pg config: not the store's pool, whose sessions come and go. */
  connection: ConnectionConfig
  /** The notification channel every process of one platform shares. */
  channel?: string
  /** A subscriber that threw, a session lost, a notification that is not an event: to be logged. */
  onError: (error: unknown, context: string) => void
  /** How often the listening session is checked (a dead one is replaced). Default 10 s. */
  heartbeatMs?: number
  backoff?: { initialMs?: number; maxMs?: number }
}

export const DEFAULT_EVENTS_CHANNEL = 'miosa_events'

/** Opens the listening session (rejects when PostgreSQL cannot be reached) and returns the events. */
export async function openPostgresEvents(options: PostgresEventsOptions): Promise<PostgresEvents> {
  const events = new PostgresEvents(options)
  await events.open()
  return events
}

export class PostgresEvents implements PlatformEvents {
  /** Tags this process's notifications, so it can tell its own echo. */
  readonly origin = randomBytes(9).toString('base64url')
  private readonly channel: string
  private readonly listeners = new Set<(event: PlatformEvent) => void>()
  private readonly gapListeners = new Set<() => void>()
  private readonly listening: DedicatedConnection
  private readonly publishing: pg.Pool
  /** Publishes run one after another: the order they were called in is the order sent. */
  private sending: Promise<void> = Promise.resolve()
  private closed = false

  constructor(private readonly options: PostgresEventsOptions) {
    this.channel = options.channel ?? DEFAULT_EVENTS_CHANNEL
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.channel)) {
      throw new MiosaError('invalid', `event channel ${JSON.stringify(this.channel)}: lower-case letters, digits and _, at most 63`)
    }
    this.listening = new DedicatedConnection({
      connection: options.connection,
      applicationName: `miosa-events ${this.origin}`,
      heartbeatMs: options.heartbeatMs ?? 10_000,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      onError: options.onError,
      prepare: async (client) => {
        client.on('notification', (message) => {
          if (message.channel === this.channel && message.payload !== undefined) this.received(message.payload)
        })
        await client.query(`LISTEN ${this.channel}`)
      },
      onUp: (_client, reconnected) => {
        // Whatever was sent while no session listened is lost: caches must start again.
        if (reconnected) this.gap()
      },
      onDown: (error) => options.onError(error, 'events: the listening session ended, reconnecting'),
    })
    const base = typeof options.connection === 'string' ? { connectionString: options.connection } : options.connection
    // One session, kept open (no idle timeout): its queue is what keeps the order. A
    // publish fails after a bound rather than hang while PostgreSQL is unreachable.
    this.publishing = new pg.Pool({
      ...base,
      max: 1,
      idleTimeoutMillis: 0,
      connectionTimeoutMillis: 5000,
      query_timeout: 5000,
      application_name: `miosa-events-publish ${this.origin}`,
    })
    // An idle publishing session that drops is replaced by the next publish; nothing else to do.
    this.publishing.on('error', (error) => options.onError(error, 'events: the publishing session ended'))
  }

  async open(): Promise<void> {
    await this.listening.open()
  }

  async publish(event: PlatformEvent): Promise<void> {
    if (this.closed) throw new MiosaError('unavailable', 'events are closed: nothing can be published')
    // Refused before anyone sees it: an event is delivered everywhere or nowhere.
    const payloads = encodeEvent(this.origin, event)
    this.deliver(event)
    const sent = this.sending.then(() => this.send(event.type, payloads))
    // The next publish waits for this one, whether it was sent or not.
    this.sending = sent.catch(() => undefined)
    await sent
  }

  subscribe(listener: (event: PlatformEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  onGap(listener: () => void): () => void {
    this.gapListeners.add(listener)
    return () => this.gapListeners.delete(listener)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.sending
    this.listeners.clear()
    this.gapListeners.clear()
    await Promise.all([this.listening.close(), this.publishing.end()])
  }

  private async send(type: string, payloads: string[]): Promise<void> {
    try {
      for (const payload of payloads) {
        try {
          await this.publishing.query('SELECT pg_notify($1, $2)', [this.channel, payload])
        } catch (error) {
          if (!isConnectionError(error)) throw error
          // The publishing session was lost (the pool drops it): once more on a fresh one.
          // A receiver may see an event twice; events say "may be stale", so that is harmless.
          await this.publishing.query('SELECT pg_notify($1, $2)', [this.channel, payload])
        }
      }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new MiosaError('unavailable', `event ${type} reached this process but not the others: ${reason}`, { cause: error })
    }
  }

  private received(payload: string): void {
    const decoded = decodeEvent(payload)
    if (decoded instanceof Error) {
      this.options.onError(decoded, `events: ignored a notification on ${this.channel}`)
      return
    }
    // Our own events reached our subscribers at publish.
    if (decoded.origin === this.origin) return
    this.deliver(decoded.event)
  }

  private deliver(event: PlatformEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event)
      } catch (error) {
        // One subscriber's bug must not keep the event from the others.
        this.options.onError(error, `events: a subscriber threw on ${event.type}`)
      }
    }
  }

  private gap(): void {
    for (const listener of [...this.gapListeners]) {
      try {
        listener()
      } catch (error) {
        this.options.onError(error, 'events: a gap listener threw')
      }
    }
  }
}

/** An error that says the session is gone (not that the query was wrong). */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code
  // 57P01..57P03: terminated by an administrator or a shutdown; 08xxx: connection exceptions.
  if (typeof code === 'string') return code.startsWith('57P') || code.startsWith('08')
  const message = error instanceof Error ? error.message : ''
  return /Connection terminated|ECONNRESET|EPIPE|not queryable|Client has encountered a connection error/i.test(message)
}
