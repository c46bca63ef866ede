import type { InstanceDriver } from '../runtime/instance-driver.js'
import type { RuntimeRef } from '../runtime/runtime-driver.js'
import type { RuntimeLogEvent } from '../schemas/deployments.js'
import type { DeploymentRecord, InstanceRecord, Store } from '../store/store.js'

// The output of instances whose rollout failed: read before they are removed and kept with
// the `rollout_failed` event (secrets masked), so `miosa logs <deployment>` still shows why
// the app never became healthy once its containers are gone.

/** Lines of an app's output kept when its rollout fails (and quoted in the version's error). */
export const ROLLOUT_OUTPUT_LINES = 50
/** A kept line longer than this is cut: a row of events must stay small. */
const MAX_KEPT_LINE = 2000

/** The last `lines` lines of each instance's output, oldest first; a container already gone has none. */
export async function lastOutput(driver: InstanceDriver, instances: readonly { id: string; ref: RuntimeRef }[], lines = ROLLOUT_OUTPUT_LINES): Promise<RuntimeLogEvent[]> {
  const out: RuntimeLogEvent[] = []
  for (const { id, ref } of instances) {
    const mine: RuntimeLogEvent[] = []
    try {
      for await (const entry of driver.logs(ref, { tail: lines, follow: false })) {
        mine.push({ instance_id: id, stream: entry.stream, timestamp: entry.timestamp, line: entry.line.length > MAX_KEPT_LINE ? `${entry.line.slice(0, MAX_KEPT_LINE)}…` : entry.line })
      }
    } catch {
      // The container may be gone already: no lines then.
    }
    out.push(...mine.slice(-lines))
  }
  return out.sort((a, b) => a.timestamp.localeCompare(b.timestamp))
}

/**
 * The kept output of the environment's last failed rollout, while it is the latest news:
 * no instance running now was started after it (a later rollout's instances replace it).
 */
export async function keptRolloutOutput(store: Store, deployment: DeploymentRecord, environment: string, tail: number): Promise<RuntimeLogEvent[]> {
  const scope = { organization_id: deployment.organization_id }
  const [failed] = (await store.instanceEvents.list(scope, { limit: 1, where: { deployment_id: deployment.id, environment, type: 'rollout_failed' } })).data
  if (failed === undefined) return []
  const kept = (failed.details as { output?: unknown }).output
  if (!Array.isArray(kept)) return []
  const running: InstanceRecord[] = await store.instances.find(scope, { deployment_id: deployment.id, environment })
  if (running.some((r) => r.created_at > failed.created_at)) return []
  const lines = (kept as RuntimeLogEvent[]).filter((l) => typeof l?.line === 'string' && typeof l.instance_id === 'string')
  // `tail` counts per instance, like the live logs.
  const byInstance = new Map<string, RuntimeLogEvent[]>()
  for (const l of lines) byInstance.set(l.instance_id, [...(byInstance.get(l.instance_id) ?? []), l])
  return [...byInstance.values()].flatMap((own) => (tail === 0 ? [] : own.slice(-tail)))
}
