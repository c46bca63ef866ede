import type { InstanceDriver, ListeningSocket } from '../runtime/instance-driver.js'
import { isLoopback } from '../runtime/proc-net-tcp.js'
import type { RuntimeRef } from '../runtime/runtime-driver.js'

// Instances are given PORT, but some apps listen on a port of their own (a start script
// with `-p 3000`, a framework's default). While an instance is not healthy, its listening
// sockets are looked at (at most once a second): when nothing listens on the expected port
// but the app listens on another one reachable from outside, and still does a second
// later (not a port opened on the way to the real one), the platform routes there.

const LOOK_EVERY_MS = 1000

export class PortDiscovery {
  /** Per instance: when it was last looked at, and the port seen then. */
  private readonly looks = new WeakMap<RuntimeRef, { at: number; port: number | undefined }>()

  constructor(private readonly driver: () => InstanceDriver) {}

  /** The port the instance's app listens on instead of `expected`, once seen twice in a row; undefined otherwise. */
  async elsewhere(ref: RuntimeRef, expected: number): Promise<number | undefined> {
    const last = this.looks.get(ref)
    if (last !== undefined && Date.now() - last.at < LOOK_EVERY_MS) return undefined
    const port = otherPort(await this.driver().listeningSockets(ref), expected)
    this.looks.set(ref, { at: Date.now(), port })
    return port !== undefined && port === last?.port ? port : undefined
  }
}

/** The lowest port listened on from outside when `expected` is not among them. */
export function otherPort(sockets: readonly ListeningSocket[], expected: number): number | undefined {
  const reachable = sockets.filter((s) => !isLoopback(s.host)).map((s) => s.port)
  if (reachable.includes(expected)) return undefined
  return reachable.length === 0 ? undefined : Math.min(...reachable)
}

/** What a deploy says when it routes elsewhere. */
export function routedMessage(port: number, expected: number): string {
  return `the app listens on ${port}, not $PORT=${expected}: routing to ${port}`
}
