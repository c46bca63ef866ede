// A progress display on stderr for long work (an image build, a sandbox starting). On a
// terminal it is one line redrawn in place with a spinner and the elapsed time; elsewhere
// (logs, CI) each new message is one plain line.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

export class Progress {
  private message = ''
  private frame = 0
  private timer: NodeJS.Timeout | undefined
  private readonly started = Date.now()
  private readonly tty: boolean

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly enabled: boolean,
  ) {
    this.tty = stream.isTTY === true
  }

  update(message: string): void {
    if (!this.enabled || message === this.message) return
    this.message = message
    if (!this.tty) {
      this.stream.write(`${message}\n`)
      return
    }
    this.timer ??= setInterval(() => this.draw(), 100).unref()
    this.draw()
  }

  /** Clears the live line and, when given, leaves a final message. */
  done(message?: string): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (!this.enabled) return
    if (this.tty) this.stream.write('\r\x1b[K')
    if (message !== undefined) this.stream.write(`${message}\n`)
  }

  private draw(): void {
    const seconds = Math.floor((Date.now() - this.started) / 1000)
    const width = (this.stream.columns ?? 80) - 12
    const text = this.message.length > width ? `${this.message.slice(0, Math.max(0, width - 1))}…` : this.message
    this.frame = (this.frame + 1) % FRAMES.length
    this.stream.write(`\r\x1b[K${FRAMES[this.frame]} ${text} (${seconds}s)`)
  }
}
