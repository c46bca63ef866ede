import { describe, expect, it } from 'vitest'
import { PortDiscovery, otherPort, routedMessage } from '../../src/core/port-discovery.js'
import type { InstanceDriver, ListeningSocket } from '../../src/runtime/instance-driver.js'

// Which port an app that ignores PORT is routed to, and when: the choice is pure; the
// timing rule (looked at once a second, the same port seen twice) runs on a driver that
// answers sockets a test sets.

describe('otherPort', () => {
  it('is none while the app listens on the expected port, or on nothing reachable', () => {
    expect(otherPort([{ host: '0.0.0.0', port: 8080 }, { host: '0.0.0.0', port: 3000 }], 8080)).toBeUndefined()
    expect(otherPort([{ host: '::', port: 8080 }], 8080)).toBeUndefined()
    expect(otherPort([], 8080)).toBeUndefined()
    expect(otherPort([{ host: '127.0.0.11', port: 41411 }, { host: '127.0.0.1', port: 3000 }, { host: '::1', port: 5000 }], 8080)).toBeUndefined()
  })

  it('is the lowest port listened on from outside otherwise', () => {
    expect(otherPort([{ host: '127.0.0.11', port: 41411 }, { host: '0.0.0.0', port: 9229 }, { host: '::', port: 3000 }], 8080)).toBe(3000)
  })

  it('says what it does', () => {
    expect(routedMessage(3000, 8080)).toBe('the app listens on 3000, not $PORT=8080: routing to 3000')
  })
})

describe('PortDiscovery', () => {
  it('routes elsewhere only once the same port is seen on two looks a second apart', async () => {
    let sockets: ListeningSocket[] = []
    let looks = 0
    const driver = {
      listeningSockets: async () => {
        looks++
        return sockets
      },
    } as unknown as InstanceDriver
    const ports = new PortDiscovery(() => driver)
    const ref = { driver: 'test', id: 'c1' }
    sockets = [{ host: '0.0.0.0', port: 9000 }]
    expect(await ports.elsewhere(ref, 8080)).toBeUndefined()
    // Within the second: not looked at again.
    expect(await ports.elsewhere(ref, 8080)).toBeUndefined()
    expect(looks).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 1050))
    sockets = [{ host: '0.0.0.0', port: 3000 }]
    expect(await ports.elsewhere(ref, 8080)).toBeUndefined() // another port than last time
    await new Promise((resolve) => setTimeout(resolve, 1050))
    expect(await ports.elsewhere(ref, 8080)).toBe(3000)
    expect(looks).toBe(3)
  })
})
