import type { OrgScope, RouteChangeRecord, RouteChangeRequest, Store } from '../store/store.js'
import type { PlatformEvent, PlatformEvents } from './platform-events.js'

// The one place a deployment's route moves. Publish, rollback, promote and the removal of
// an environment all come here, so "the route changed" always means: recorded in the store
// (with its history row, in one transaction), then told to every edge of every process
// through the events port. A reader that missed the event still sees the store within its
// cache's TTL.

export type RouteChangedEvent = Extract<PlatformEvent, { type: 'route.changed' }>

export class RouteSwitch {
  constructor(private readonly deps: { store: Store; events: PlatformEvents }) {}

  /**
   * Points an environment at a ready version and records why (see DeploymentRoutesStore.repoint);
   * answers the change, or undefined when `onlyIfNewer` kept a newer version live. Edges in this
   * process have dropped the old route when it resolves.
   */
  async repoint(scope: OrgScope, change: RouteChangeRequest, o: { staticReleaseSha256: string | null; onlyIfNewer?: boolean }): Promise<RouteChangeRecord | undefined> {
    const recorded = await this.deps.store.deploymentRoutes.repoint(scope, change, { onlyIfNewer: o.onlyIfNewer ?? false })
    if (recorded !== undefined) {
      await this.deps.events.publish({ type: 'route.changed', deploymentId: change.deployment_id, environment: change.environment, staticReleaseSha256: o.staticReleaseSha256 })
    }
    return recorded
  }

  /** Says an environment's routes were removed (the environment was deleted) from these deployments. */
  async removed(deploymentIds: readonly string[], environment: string): Promise<void> {
    for (const deploymentId of deploymentIds) await this.deps.events.publish({ type: 'route.changed', deploymentId, environment, staticReleaseSha256: null })
  }

  /** Calls `listener` for every route change, in this process or another (call the result to stop). */
  onChange(listener: (change: RouteChangedEvent) => void): () => void {
    return this.deps.events.subscribe((event) => {
      if (event.type === 'route.changed') listener(event)
    })
  }
}
