import type { HealthChecker, InstanceDriver } from '../../runtime/instance-driver.js'
import type { ReleaseRecord, Store } from '../../store/store.js'
import type { EnvironmentValues } from '../environment-values.js'
import type { InflightRequests } from '../inflight.js'
import type { Log } from '../log.js'
import type { PlatformEvents } from '../platform-events.js'
import type { DrainGate } from './drain-gate.js'

export interface InstanceLimits {
  cpu: number
  memoryMb: number
  pidsLimit: number
}

export const DEFAULT_INSTANCE_LIMITS: InstanceLimits = { cpu: 1, memoryMb: 512, pidsLimit: 512 }

export interface RuntimeInstancesDeps {
  store: Store
  driver?: InstanceDriver | undefined
  /** Makes the release's image present on this host (loading its OCI archive from the blob store when missing). */
  ensureImage(release: ReleaseRecord, onLog?: (line: string) => void): Promise<void>
  /** The env vars of deployment environments, injected at every boot; without it, instances get none. */
  environmentValues?: EnvironmentValues | undefined
  /** Checks one instance's health (src/runtime/health-check.ts). */
  checkHealth: HealthChecker
  /** Where `instances.changed` goes whenever where an environment's traffic may go changed (edges drop their cached targets). */
  events: PlatformEvents
  /** Requests in flight per instance, counted by an edge in this process; the default drain gate reads it. */
  inflight?: InflightRequests | undefined
  /** When a draining instance may stop (drain-gate.ts); default: this process's in-flight counts. */
  drainGate?: DrainGate | undefined
  limits?: InstanceLimits | undefined
  log?: Log | undefined
}
