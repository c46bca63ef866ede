import { SandboxReaper } from '../core/sandbox-reaper.js'
import { SandboxReconciler } from '../core/sandbox-reconciler.js'
import type { Foundation } from './foundation.js'

// The platform's own work, not asked for by a request: what a restart interrupted
// (builds, unarchived releases, leftover builder containers), the reconcilers of
// sandboxes and runtime instances, the idle-sandbox reaper and disk measures.
//
// It must run in the process that creates, stops and resumes sandboxes and rolls out
// instances (today the one holding the API): their lifecycle locks and "still being
// created" marks live in that process's memory, and a reconciler elsewhere would take a
// sandbox being created for a lost one.

export interface WorkerRole {
  readonly reconciler: SandboxReconciler
  readonly reaper: SandboxReaper
  /** What must be settled before anything is served: interrupted builds, re-adopted instances. */
  recover(): Promise<void>
  /** Starts the loops (a first sandbox reconciliation at once). */
  start(): Promise<void>
  /** Stops the loops; running builds are recorded failed; instances and sandboxes keep running. */
  stop(): Promise<void>
}

export function createWorker(f: Foundation): WorkerRole {
  const { config, logger, store, runtime, services, builder } = f
  const log = logger.child({ component: 'sandboxes' })
  const reconciler = new SandboxReconciler({ store, runtime, sandboxes: services.sandboxes, log })
  const reaper = new SandboxReaper({ store, sandboxes: services.sandboxes, log, intervalMs: config.sandboxReaperIntervalMs })
  let timer: NodeJS.Timeout | undefined
  const reconcile = () =>
    reconciler.reconcile().catch((error: unknown) => logger.warn({ err: error }, 'sandbox reconciliation failed (is the Docker daemon running?)'))
  return {
    reconciler,
    reaper,
    async recover() {
      // A build the last process was running when it died: its version fails with the reason, its container goes.
      await services.publish.recoverInterruptedBuilds()
      await services.publish.archiveMissing().catch((error: unknown) => logger.warn({ err: error }, 'could not look for unarchived releases'))
      await builder.cleanup().catch((error: unknown) => logger.warn({ err: error }, 'could not remove leftover builder containers (is the Docker daemon running?)'))
      // Runtime instances that survived a restart are re-adopted (not restarted) before the edge takes requests.
      await services.instances.reconcile().catch((error: unknown) => logger.warn({ err: error }, 'instance reconciliation failed (is the Docker daemon running?)'))
    },
    async start() {
      // Re-adopt what survived a restart before anything new is created, then keep converging.
      await reconcile()
      timer = setInterval(() => void reconcile(), config.reconcileIntervalMs).unref()
      services.instances.start(config.instanceReconcileIntervalMs)
      reaper.start()
      services.sandboxDisk.start()
    },
    async stop() {
      clearInterval(timer)
      await reaper.stop()
      await services.sandboxDisk.stop()
      // Running builds are aborted and recorded failed while the store is still open.
      await services.publish.shutdown()
      // Instances keep running: the next start re-adopts them.
      await services.instances.stop()
    },
  }
}
