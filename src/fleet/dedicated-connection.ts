import pg from 'pg'

// One PostgreSQL session a process keeps to itself (never a pooled one): LISTEN and
// session advisory locks belong to a session, so whoever uses them must know when that
// session ends. It reconnects with backoff, and a heartbeat notices a connection that
// died without closing (a partition), which TCP alone would report only after minutes.

export type ConnectionConfig = string | pg.ClientConfig

export interface DedicatedConnectionOptions {
  connection: ConnectionConfig
  /** Shown in pg_stat_activity, so an operator can tell what a session is for. */
  applicationName: string
  /** Runs on every fresh session before it counts as up (LISTEN, …); a throw fails the attempt. */
  prepare?: (client: pg.Client) => Promise<void>
  /** The session is up; `reconnected` is false for the first one. */
  onUp?: (client: pg.Client, reconnected: boolean) => void
  /** The session ended (or was dropped): whatever it held is gone. Called once per session, at once. */
  onDown?: (error: Error) => void
  onError: (error: unknown, context: string) => void
  /** How often the live session is checked with `SELECT 1`, which must answer within as long. */
  heartbeatMs?: number
  backoff?: { initialMs?: number; maxMs?: number }
}

const DEFAULT_BACKOFF = { initialMs: 100, maxMs: 5000 }

export class DedicatedConnection {
  private client: pg.Client | undefined
  private closed = false
  private reconnectTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private failures = 0
  /** A session being set up, so close() can wait for it rather than leave its socket open. */
  private connecting: Promise<void> | undefined
  private readonly backoff: { initialMs: number; maxMs: number }

  constructor(private readonly options: DedicatedConnectionOptions) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff }
  }

  /** Connects the first session; rejects when that fails (a process that cannot reach its database should not start). */
  async open(): Promise<void> {
    await this.track(this.connect(false))
  }

  /** The live session, if any. */
  current(): pg.Client | undefined {
    return this.client
  }

  /** Ends the live session as lost (a query on it failed or hung) and reconnects. */
  drop(client: pg.Client, error: Error): void {
    if (this.client !== client) return
    this.lost(client, error)
    destroy(client)
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.reconnectTimer)
    clearInterval(this.heartbeatTimer)
    // A session still being set up is ended by connect() itself once it sees `closed`.
    await this.connecting?.catch(() => undefined)
    const client = this.client
    this.client = undefined
    if (client === undefined) return
    try {
      await withTimeout(client.end(), 2000, 'closing the session')
    } catch (error) {
      // A session that does not say goodbye in time is cut: close() must leave nothing open.
      this.options.onError(error, `${this.options.applicationName}: closing`)
      destroy(client)
    }
  }

  private async connect(reconnected: boolean): Promise<void> {
    const base = typeof this.options.connection === 'string' ? { connectionString: this.options.connection } : this.options.connection
    const client = new pg.Client({
      connectionTimeoutMillis: 5000,
      ...base,
      application_name: this.options.applicationName,
      keepAlive: true,
    })
    // Without an 'error' listener a dropped session would crash the process; 'end' below handles the loss.
    client.on('error', (error) => {
      if (this.client === client) this.options.onError(error, `${this.options.applicationName}: session`)
    })
    client.on('end', () => {
      if (this.client === client) this.lost(client, new Error('the PostgreSQL session ended'))
    })
    try {
      await client.connect()
      if (this.options.prepare !== undefined) await withTimeout(this.options.prepare(client), 5000, 'preparing the session')
    } catch (error) {
      destroy(client)
      throw error
    }
    if (this.closed) {
      destroy(client)
      return
    }
    this.client = client
    this.failures = 0
    this.startHeartbeat(client)
    this.options.onUp?.(client, reconnected)
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client) return
    this.client = undefined
    clearInterval(this.heartbeatTimer)
    this.options.onDown?.(error)
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.closed) return
    const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.failures)
    this.reconnectTimer = setTimeout(() => {
      this.track(this.connect(true)).catch((error: unknown) => {
        this.failures += 1
        this.options.onError(error, `${this.options.applicationName}: reconnecting`)
        this.scheduleReconnect()
      })
    }, delay)
  }

  private track(attempt: Promise<void>): Promise<void> {
    this.connecting = attempt
    return attempt.finally(() => {
      if (this.connecting === attempt) this.connecting = undefined
    })
  }

  private startHeartbeat(client: pg.Client): void {
    const every = this.options.heartbeatMs
    if (every === undefined) return
    clearInterval(this.heartbeatTimer)
    let pending = false
    this.heartbeatTimer = setInterval(() => {
      if (pending || this.client !== client) return
      pending = true
      void withTimeout(client.query('SELECT 1'), every, 'heartbeat')
        .catch((error: unknown) => this.drop(client, error instanceof Error ? error : new Error(String(error))))
        .finally(() => {
          pending = false
        })
    }, every)
    this.heartbeatTimer.unref()
  }
}

/** Cuts a session's socket at once; pg has no public call for it, and end() waits on a dead peer. */
function destroy(client: pg.Client): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
  connection?.stream?.destroy()
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
