import { describe, expect, it } from 'vitest'
import { InflightRequests } from '../../src/core/inflight.js'
import { inflightDrainGate, waitingDrainGate } from '../../src/core/instances/drain-gate.js'

// When a draining instance may stop. With the edge in this process, as soon as its last
// request ends (or at the drain timeout); with the edges elsewhere (a fleet), only after
// the event has had time to reach them and then the whole drain timeout.

const address = { host: '10.0.0.7', port: 8080 }

describe('drain gates', () => {
  it('with the edge in this process: idle once its last request ends, or not idle at the timeout', async () => {
    const inflight = new InflightRequests()
    const gate = inflightDrainGate(inflight)
    const key = InflightRequests.key(address.host, address.port)
    expect(await gate.idle(address, 1000)).toBe(true)
    inflight.start(key)
    const started = Date.now()
    const idle = gate.idle(address, 5000)
    setTimeout(() => inflight.end(key), 100)
    expect(await idle).toBe(true)
    expect(Date.now() - started).toBeLessThan(1000)
    inflight.start(key)
    expect(await gate.idle(address, 100)).toBe(false)
  })

  it('with the edges elsewhere: waits for the event to reach them, then the drain timeout', async () => {
    const started = Date.now()
    expect(await waitingDrainGate(150).idle(address, 100)).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(245)
  })
})
