import { PassThrough } from 'node:stream'

// Progressive answers: server-sent events (exec) and NDJSON (template builds). Both are
// plain byte streams handed to Fastify, which pipes them out and destroys them when the
// client goes away; `closed` fires then, so the work behind the stream can be aborted.

const KEEP_ALIVE_MS = 15_000

abstract class ProgressiveStream {
  readonly stream = new PassThrough()
  /** Aborted when the stream ends or the client disconnects. */
  readonly closed: AbortSignal
  private readonly controller = new AbortController()

  constructor() {
    this.closed = this.controller.signal
    this.stream.once('close', () => this.controller.abort())
  }

  get open(): boolean {
    return !this.stream.destroyed && !this.stream.writableEnded
  }

  protected write(text: string): void {
    if (this.open) this.stream.write(text)
  }

  end(): void {
    if (this.open) this.stream.end()
  }
}

/** text/event-stream: `event: <name>` and one line of JSON `data:` per event. */
export class EventStream extends ProgressiveStream {
  static readonly contentType = 'text/event-stream; charset=utf-8'
  static readonly headers = { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }

  constructor() {
    super()
    // A comment first sends the headers at once; more keep idle proxies from closing the stream.
    this.write(': stream open\n\n')
    const timer = setInterval(() => this.write(': keep-alive\n\n'), KEEP_ALIVE_MS)
    timer.unref()
    this.closed.addEventListener('abort', () => clearInterval(timer))
    this.stream.once('finish', () => clearInterval(timer))
  }

  send(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /**
   * Runs `work` (which sends the events) in the background, then ends the stream; a failure
   * becomes one `error` event ({error: describe(error)}) while the client is still there.
   */
  pump(work: () => Promise<void>, describe: (error: unknown) => unknown): void {
    work()
      .catch((error: unknown) => {
        if (this.open) this.send('error', { error: describe(error) })
      })
      .finally(() => this.end())
  }
}

/** application/x-ndjson: one JSON document per line. */
export class NdjsonStream extends ProgressiveStream {
  static readonly contentType = 'application/x-ndjson; charset=utf-8'

  send(line: unknown): void {
    this.write(`${JSON.stringify(line)}\n`)
  }
}
