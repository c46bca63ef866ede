import type { PlatformEvent, PlatformEvents } from './platform-events.js'

/** Events for a platform that is one process: delivered synchronously to this process's subscribers, never lost. */
export class InProcessEvents implements PlatformEvents {
  private readonly listeners = new Set<(event: PlatformEvent) => void>()

  constructor(private readonly onListenerError: (error: unknown, event: PlatformEvent) => void = () => {}) {}

  async publish(event: PlatformEvent): Promise<void> {
    for (const listener of [...this.listeners]) {
      try {
        listener(event)
      } catch (error) {
        // One subscriber's bug must not keep the event from the others.
        this.onListenerError(error, event)
      }
    }
  }

  subscribe(listener: (event: PlatformEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  onGap(): () => void {
    // Nothing between publisher and subscriber can drop an event here.
    return () => {}
  }

  async close(): Promise<void> {
    this.listeners.clear()
  }
}
