// A progress display on stderr for long work (an image build, a sandbox starting). On a
// terminal it is one line redrawn in place with a spinner and the elapsed time; elsewhere
// (logs, CI) each new message is one plain line; with --json each is one JSON event
// (`{"type":"progress","message":…, …fields}`), so stdout keeps exactly one document.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

export type ProgressMode = 'text' | 'json' | 'off'

export class Progress {
  private message = ''
  private frame = 0
  private timer: NodeJS.Timeout | undefined
  private readonly started = Date.now()
  private readonly tty: boolean

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly mode: ProgressMode,
  ) {
    this.tty = stream.isTTY === true
  }

  /** Shows `message`; with --json, `fields` (a stage, how far) go into its event too. */
  update(message: string, fields: Record<string, unknown> = {}): void {
    if (this.mode === 'off' || message === this.message) return
    this.message = message
    if (this.mode === 'json') {
      this.stream.write(`${JSON.stringify({ type: 'progress', message, ...fields, elapsed_ms: Date.now() - this.started })}\n`)
      return
    }
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
    if (this.mode === 'off') return
    if (this.mode === 'json') {
      if (message !== undefined) this.stream.write(`${JSON.stringify({ type: 'done', message, elapsed_ms: Date.now() - this.started })}\n`)
      return
    }
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

/** "step 3/7 (43%)" of a template build, or '' before its first step. */
export function stepOf(p: { step: number | null; steps: number | null }): string {
  if (p.step === null || p.steps === null || p.steps === 0) return ''
  return `step ${p.step}/${p.steps} (${Math.round((p.step / p.steps) * 100)}%)`
}
