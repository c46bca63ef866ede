// What one part of the platform tells every other, in this process and in every other
// process of a fleet: "what you cached about X may be stale". Desired state lives in the
// store; an event only says which part of it changed, so a lost event costs freshness,
// never correctness (readers also bound their caches by a TTL, and drop everything on a
// gap). Implementations: in-process (core/in-process-events.ts) for one process,
// PostgreSQL LISTEN/NOTIFY for a fleet; both run test/contract/platform-events.test.ts.

export type PlatformEvent =
  /** A deployment environment was re-pointed (publish, rollback, promote) or its route removed (environment null: every environment). */
  | { type: 'route.changed'; deploymentId: string; environment: string | null; staticReleaseSha256: string | null }
  /** Instances of a deployment environment started, got healthy, drained or went: where its traffic may go changed. */
  | { type: 'instances.changed'; deploymentId: string; environment: string }
  /** A sandbox changed state (stopped, resumed, destroyed): a cached address of it may be wrong. */
  | { type: 'sandbox.changed'; sandboxId: string }
  /** These sandboxes were used (preview traffic, open connections) since the last report: keep them awake. */
  | { type: 'sandbox.activity'; sandboxIds: string[]; held: string[] }
  /** A preview or share token was revoked: cookies it granted are refused from now on. */
  | { type: 'access.revoked'; tokenId: string }
  /** A workspace's branding or preview domain changed. */
  | { type: 'tenant.changed'; workspaceId: string }

export type PlatformEventType = PlatformEvent['type']

export interface PlatformEvents {
  /**
   * Sends the event to every subscriber of every process. Subscribers in this process
   * have seen it when the promise resolves (so a route change is visible to this
   * process's edge before the answer leaves); other processes see it as soon as the
   * transport carries it. Never throws for a subscriber's error.
   */
  publish(event: PlatformEvent): Promise<void>
  /** Calls `listener` for every event from now on; call the result to stop. */
  subscribe(listener: (event: PlatformEvent) => void): () => void
  /**
   * Calls `listener` when events may have been missed (the transport reconnected):
   * whoever caches should drop everything. Call the result to stop.
   */
  onGap(listener: () => void): () => void
  close(): Promise<void>
}
