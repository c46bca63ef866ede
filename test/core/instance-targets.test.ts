import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/core/ids.js'
import { InstanceTargets } from '../../src/core/instances/instance-targets.js'
import { silentLog } from '../../src/core/log.js'
import type { PlatformEvent, PlatformEvents } from '../../src/core/platform-events.js'
import { createServices } from '../../src/core/services.js'
import { InProcessEvents } from '../../src/fleet/in-process-events.js'
import type { RuntimeDriver } from '../../src/runtime/runtime-driver.js'
import { openPostgresStore } from '../../src/store/kysely/postgres.js'
import { openSqliteStore } from '../../src/store/kysely/sqlite.js'
import type { InstanceRecord, Store } from '../../src/store/store.js'
import { createTestDatabase } from '../helpers/postgres.js'
import type { TestDatabase } from '../helpers/postgres.js'

// Where the edge sends a dynamic app's traffic, read from the store's instance rows: cached
// (a second request is answered without a promise), re-read once an `instances.changed` or
// `route.changed` event names the environment (a draining instance gets no new request
// after the event), re-read after a gap in the events, and bounded by a TTL when an event
// is lost. The rows are written as a worker writes them, in the real store of each dialect
// (PostgreSQL is what a fleet's edges read).

/** In-process events whose transport can also report a gap, as a reconnecting one does. */
class GappingEvents implements PlatformEvents {
  private readonly inner = new InProcessEvents()
  private readonly gapListeners = new Set<() => void>()
  publish(event: PlatformEvent) {
    return this.inner.publish(event)
  }
  subscribe(listener: (event: PlatformEvent) => void) {
    return this.inner.subscribe(listener)
  }
  onGap(listener: () => void) {
    this.gapListeners.add(listener)
    return () => this.gapListeners.delete(listener)
  }
  gap() {
    for (const listener of this.gapListeners) listener()
  }
  close() {
    return this.inner.close()
  }
}

let port = 20_000

describe.each(['sqlite', 'postgres'])('instance targets from the store (%s)', (dialect) => {
  let dir: string
  let database: TestDatabase | undefined
  let store: Store
  let events: GappingEvents
  let deployment: { id: string; organization_id: string; workspace_id: string }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'miosa-targets-'))
    if (dialect === 'sqlite') store = openSqliteStore(join(dir, 'miosa.db'))
    else {
      database = await createTestDatabase()
      store = openPostgresStore(database.url, () => {})
    }
    await store.migrate()
    events = new GappingEvents()
    const notUsed = async (): Promise<never> => {
      throw new Error('not used')
    }
    const services = createServices({ store, runtime: {} as RuntimeDriver, checkArchive: notUsed, log: silentLog, events })
    const org = await services.organizations.create({ name: 'Targets Org' })
    const dep = await services.deployments.create(org.id, { name: 'Targets App' })
    deployment = { id: dep.id, organization_id: org.id, workspace_id: dep.workspace_id }
  })

  afterAll(async () => {
    await store?.close()
    await database?.drop()
    await rm(dir, { recursive: true, force: true })
  })

  async function instance(environment: string, versionId: string, state: InstanceRecord['state']): Promise<InstanceRecord> {
    const now = new Date().toISOString()
    return store.instances.insert({
      id: newId('instance'),
      organization_id: deployment.organization_id,
      workspace_id: deployment.workspace_id,
      deployment_id: deployment.id,
      environment,
      version_id: versionId,
      version_number: 1,
      state,
      runtime_ref: null,
      address: { host: '127.0.0.1', port: port++ },
      exit_code: null,
      created_at: now,
      updated_at: now,
      healthy_at: state === 'healthy' ? now : null,
    })
  }

  const setState = (r: InstanceRecord, state: InstanceRecord['state']) => store.instances.update({ organization_id: r.organization_id }, r.id, { state })
  const changed = (environment: string) => events.publish({ type: 'instances.changed', deploymentId: deployment.id, environment })
  const ports = (targets: readonly { port: number }[]) => targets.map((t) => t.port).toSorted()

    it('reads an environment once, then answers from the cache without a promise', async () => {
      const targets = new InstanceTargets({ store, events })
      const a = await instance('one', 'ver_a', 'healthy')
      await instance('one', 'ver_a', 'starting')
      const app = { deploymentId: deployment.id, environment: 'one', versionId: 'ver_a' }
      const first = targets.appTargets(app)
      expect(first).toBeInstanceOf(Promise)
      expect(ports(await first)).toEqual([a.address?.port])
      const second = targets.appTargets(app)
      expect(Array.isArray(second)).toBe(true)
      expect(ports(second as readonly { port: number }[])).toEqual([a.address?.port])
      targets.close()
    })

    it('serves the live version until the new one is healthy, then whichever is healthy while the route flips', async () => {
      const targets = new InstanceTargets({ store, events })
      const old = await instance('two', 'ver_old', 'healthy')
      const fresh = await instance('two', 'ver_new', 'starting')
      const onOld = { deploymentId: deployment.id, environment: 'two', versionId: 'ver_old' }
      const onNew = { ...onOld, versionId: 'ver_new' }
      expect(ports(await targets.appTargets(onOld))).toEqual([old.address?.port])
      await setState(fresh, 'healthy')
      await changed('two')
      // Healthy, but the route still names the old version: the old one keeps serving it.
      expect(ports(await targets.appTargets(onOld))).toEqual([old.address?.port])
      expect(ports(await targets.appTargets(onNew))).toEqual([fresh.address?.port])
      await setState(old, 'draining')
      await changed('two')
      // An edge whose route cache still names the old version goes to the healthy new one, never to the draining one.
      expect(ports(await targets.appTargets(onOld))).toEqual([fresh.address?.port])
      targets.close()
    })

    it('gives a draining instance no new request once the event arrived; a retry may still use what was known', async () => {
      const targets = new InstanceTargets({ store, events })
      const a = await instance('three', 'ver_c', 'healthy')
      const b = await instance('three', 'ver_c', 'healthy')
      const app = { deploymentId: deployment.id, environment: 'three', versionId: 'ver_c' }
      expect(ports(await targets.appTargets(app))).toEqual(ports([a.address!, b.address!]))
      await setState(a, 'draining')
      await changed('three')
      const next = targets.appTargets(app)
      expect(next).toBeInstanceOf(Promise)
      expect(targets.knownTargets(app)).toHaveLength(2)
      expect(ports(await next)).toEqual([b.address?.port])
      // Nothing else serves that version: its draining instance is the last resort.
      await setState(b, 'unhealthy')
      await events.publish({ type: 'route.changed', deploymentId: deployment.id, environment: null, staticReleaseSha256: null })
      expect(ports(await targets.appTargets(app))).toEqual([a.address?.port])
      await store.instances.delete({ organization_id: a.organization_id }, a.id)
      await changed('three')
      expect(await targets.appTargets(app)).toEqual([])
      targets.close()
    })

    it('reads again after a gap in the events, and after the TTL when an event was lost', async () => {
      const targets = new InstanceTargets({ store, events, ttlMs: 100 })
      const a = await instance('four', 'ver_d', 'healthy')
      const app = { deploymentId: deployment.id, environment: 'four', versionId: 'ver_d' }
      expect(ports(await targets.appTargets(app))).toEqual([a.address?.port])
      await setState(a, 'unhealthy')
      // No event: the cache answers what it read.
      expect(ports(targets.appTargets(app) as readonly { port: number }[])).toEqual([a.address?.port])
      events.gap()
      expect(await targets.appTargets(app)).toEqual([])
      await setState(a, 'healthy')
      // Still no event: past the TTL the stale answer is given once more while the store is read again.
      await new Promise((resolve) => setTimeout(resolve, 150))
      expect(targets.appTargets(app)).toEqual([])
      const deadline = Date.now() + 2000
      while (Date.now() < deadline && ports(targets.knownTargets(app)).length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(ports(targets.appTargets(app) as readonly { port: number }[])).toEqual([a.address?.port])
      targets.close()
    })
})
