// Bytes arriving from a socket, consumed as an AsyncIterable (exec stdin). The producer
// is told to pause while the consumer lags, so a fast client cannot fill the server's memory.

const HIGH_WATER_BYTES = 1024 * 1024

export class ByteQueue implements AsyncIterable<Buffer> {
  private readonly chunks: Buffer[] = []
  private queued = 0
  private ended = false
  private wake: (() => void) | undefined

  constructor(private readonly flow: { pause(): void; resume(): void }) {}

  push(chunk: Buffer): void {
    if (this.ended) return
    this.chunks.push(chunk)
    this.queued += chunk.length
    if (this.queued > HIGH_WATER_BYTES) this.flow.pause()
    this.notify()
  }

  end(): void {
    this.ended = true
    this.notify()
  }

  get isEnded(): boolean {
    return this.ended
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) {
        this.queued -= chunk.length
        if (this.queued <= HIGH_WATER_BYTES / 2) this.flow.resume()
        yield chunk
        continue
      }
      if (this.ended) return
      await new Promise<void>((resolve) => (this.wake = resolve))
    }
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}
