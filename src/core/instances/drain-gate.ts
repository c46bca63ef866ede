import type { InstanceAddress } from '../../runtime/instance-driver.js'
import { InflightRequests } from '../inflight.js'

// When a draining instance may stop: once the requests the edge sent it have finished.
// Only the edge counts them. In one process the worker reads the edge's counter
// (inflightDrainGate); in a fleet it cannot, so it waits for the `instances.changed`
// event to reach every edge and then the whole drain timeout (waitingDrainGate). An edge
// that reports its counts (to the store or as events) would be a third gate here.

export interface DrainGate {
  /**
   * Resolves once nothing is in flight to `address` (the edge stopped choosing it already),
   * or after `timeoutMs`; answers whether it went idle.
   */
  idle(address: InstanceAddress, timeoutMs: number): Promise<boolean>
}

/** The edge runs in this process: its own count of requests in flight. */
export function inflightDrainGate(inflight: InflightRequests): DrainGate {
  return { idle: (address, timeoutMs) => inflight.idle(InflightRequests.key(address.host, address.port), timeoutMs) }
}

/**
 * The edges run elsewhere: wait until every edge has seen the instance draining (their
 * caches drop on the event, or after their TTL at worst), then give requests they sent
 * before that the whole drain timeout.
 */
export function waitingDrainGate(propagationMs: number): DrainGate {
  return {
    idle: (_address, timeoutMs) => new Promise((resolve) => setTimeout(() => resolve(true), propagationMs + timeoutMs)),
  }
}

/**
 * Edges in this process and in others (a fleet on PostgreSQL): first every edge must have
 * stopped choosing the instance (the event reaches them within `propagationMs`, their
 * caches expire within it at worst), then this process's own requests to it finish.
 * Requests another edge sent before the event had the propagation time to finish: enough
 * for ordinary requests, not for long streams, which another edge does not report yet.
 */
export function fleetDrainGate(inflight: InflightRequests, propagationMs: number): DrainGate {
  return {
    async idle(address, timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(propagationMs, timeoutMs)))
      return inflight.idle(InflightRequests.key(address.host, address.port), Math.max(0, timeoutMs - propagationMs))
    },
  }
}
