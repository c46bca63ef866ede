import type { InstanceRecord, Store } from '../../store/store.js'
import type { Log } from '../log.js'
import { silentLog } from '../log.js'
import type { PlatformEvents } from '../platform-events.js'

// Where the edge sends a dynamic app's traffic, read from the store's instance rows (the
// worker that manages them may be another process). Cached per deployment environment so
// the edge's hot path is a Map lookup; an entry is marked stale when `instances.changed`
// or `route.changed` names it (the next request waits for a fresh read of the store, so an
// instance that drains gets no new request once the event has arrived; only a retry of a
// request that already failed may still use it), every entry on a gap in the events, and
// an entry older than the TTL is read again in the background while it keeps answering
// (the bound for an event that was lost).

export interface InstanceTarget {
  host: string
  port: number
}

/** The part of an instance row that decides whether it gets traffic. */
interface Row {
  versionId: string
  state: InstanceRecord['state']
  address: InstanceTarget
}

interface Entry {
  rows: readonly Row[]
  /** pick() per version, as asked. */
  byVersion: Map<string, readonly InstanceTarget[]>
  /** The tick it was read at. */
  readAt: number
  refreshing: boolean
  /** An event named it: new requests wait for a fresh read; a retry may still use it. */
  stale: boolean
}

export const INSTANCE_TARGETS_TTL_MS = 1000
/** More cached environments than this: all are dropped (a bound on memory, not a policy). */
const MAX_ENTRIES = 10_000

export class InstanceTargets {
  /** deploymentId → environment → entry: no key string built per request. */
  private readonly entries = new Map<string, Map<string, Entry>>()
  private readonly loading = new Map<string, Map<string, Promise<Entry>>>()
  /** Bumped on every drop of a deployment's entries: a read that began before it does not fill the cache. */
  private readonly generations = new Map<string, number>()
  private readonly organizations = new Map<string, string | null>()
  private size = 0
  private readonly stops: (() => void)[]
  /**
   * A coarse clock: advances every half TTL, so an entry two ticks old is past its TTL.
   * Date.now() costs ~200 ns on a loaded VM, more than the rest of a cached answer.
   */
  private tick = 0
  private readonly ticker: NodeJS.Timeout
  private readonly log: Log

  constructor(private readonly deps: { store: Store; events: PlatformEvents; ttlMs?: number | undefined; log?: Log | undefined }) {
    this.ticker = setInterval(() => this.tick++, (deps.ttlMs ?? INSTANCE_TARGETS_TTL_MS) / 2).unref()
    this.log = deps.log ?? silentLog
    this.stops = [
      deps.events.subscribe((event) => {
        if (event.type === 'instances.changed' || event.type === 'route.changed') this.drop(event.deploymentId, event.environment)
      }),
      deps.events.onGap(() => this.dropAll()),
    ]
  }

  /**
   * The addresses for a request to this environment that the edge resolved to `versionId`:
   * its healthy instances of that version; while a route flips, those of whatever version
   * is healthy (the edge's route cache may lag a moment behind); at worst one of that
   * version still draining. Empty: nothing is ready. From the cache without a promise;
   * a promise when the store must be read first.
   */
  appTargets(app: { deploymentId: string; environment: string; versionId: string }): readonly InstanceTarget[] | Promise<readonly InstanceTarget[]> {
    const entry = this.entries.get(app.deploymentId)?.get(app.environment)
    if (entry === undefined || entry.stale) return this.load(app.deploymentId, app.environment).then((loaded) => targetsOf(loaded, app.versionId))
    if (this.tick - entry.readAt >= 2 && !entry.refreshing) this.refresh(app.deploymentId, app.environment, entry)
    return targetsOf(entry, app.versionId)
  }

  /**
   * For a retry of a request whose instance failed (inside socket events, no waiting):
   * what is known now, stale or not. Empty when nothing was ever read.
   */
  knownTargets(app: { deploymentId: string; environment: string; versionId: string }): readonly InstanceTarget[] {
    const entry = this.entries.get(app.deploymentId)?.get(app.environment)
    return entry === undefined ? [] : targetsOf(entry, app.versionId)
  }

  /** Marks what was cached for the deployment's environment stale (every environment: null). */
  drop(deploymentId: string, environment: string | null): void {
    this.generations.set(deploymentId, (this.generations.get(deploymentId) ?? 0) + 1)
    const envs = this.entries.get(deploymentId)
    if (environment === null) {
      for (const entry of envs?.values() ?? []) entry.stale = true
      this.loading.delete(deploymentId)
      return
    }
    const entry = envs?.get(environment)
    if (entry !== undefined) entry.stale = true
    this.loading.get(deploymentId)?.delete(environment)
  }

  /** Marks everything stale (events may have been missed). */
  dropAll(): void {
    for (const deploymentId of new Set([...this.entries.keys(), ...this.loading.keys()])) this.drop(deploymentId, null)
  }

  close(): void {
    clearInterval(this.ticker)
    for (const stop of this.stops) stop()
    this.entries.clear()
    this.loading.clear()
    this.size = 0
  }

  /** Reads the environment's rows (one read for concurrent first requests) and caches them unless dropped meanwhile. */
  private load(deploymentId: string, environment: string): Promise<Entry> {
    let pending = this.loading.get(deploymentId)
    const existing = pending?.get(environment)
    if (existing !== undefined) return existing
    const generation = this.generations.get(deploymentId) ?? 0
    const promise = this.read(deploymentId, environment)
      .then((entry) => {
        if ((this.generations.get(deploymentId) ?? 0) === generation) this.store(deploymentId, environment, entry)
        return entry
      })
      .finally(() => {
        const mine = this.loading.get(deploymentId)
        if (mine?.get(environment) === promise) mine.delete(environment)
        if (mine?.size === 0) this.loading.delete(deploymentId)
      })
    if (pending === undefined) this.loading.set(deploymentId, (pending = new Map()))
    pending.set(environment, promise)
    return promise
  }

  /** A stale entry keeps answering while it is read again. */
  private refresh(deploymentId: string, environment: string, entry: Entry): void {
    entry.refreshing = true
    this.load(deploymentId, environment).catch((error: unknown) => {
      // The store did not answer: the stale entry keeps serving, and is tried again after another TTL.
      entry.refreshing = false
      entry.readAt = this.tick
      this.log.warn({ err: error, deployment_id: deploymentId, environment }, 'edge: reading instance targets failed')
    })
  }

  private store(deploymentId: string, environment: string, entry: Entry): void {
    if (this.size >= MAX_ENTRIES) {
      this.entries.clear()
      this.size = 0
    }
    let envs = this.entries.get(deploymentId)
    if (envs === undefined) this.entries.set(deploymentId, (envs = new Map()))
    if (!envs.has(environment)) this.size++
    envs.set(environment, entry)
  }

  private async read(deploymentId: string, environment: string): Promise<Entry> {
    const organizationId = await this.organizationOf(deploymentId)
    const records = organizationId === null ? [] : await this.deps.store.instances.find({ organization_id: organizationId }, { deployment_id: deploymentId, environment })
    const rows: Row[] = []
    for (const r of records) if (r.address !== null) rows.push({ versionId: r.version_id, state: r.state, address: { host: r.address.host, port: r.address.port } })
    return { rows, byVersion: new Map(), readAt: this.tick, refreshing: false, stale: false }
  }

  /** A deployment's organization never changes: read once. */
  private async organizationOf(deploymentId: string): Promise<string | null> {
    const known = this.organizations.get(deploymentId)
    if (known !== undefined) return known
    const deployment = (await this.deps.store.deployments.findByIds([deploymentId]))[0]
    const organizationId = deployment?.organization_id ?? null
    if (this.organizations.size >= MAX_ENTRIES) this.organizations.clear()
    // A deployment not found (yet) is asked again next time.
    if (organizationId !== null) this.organizations.set(deploymentId, organizationId)
    return organizationId
  }
}

function targetsOf(entry: Entry, versionId: string): readonly InstanceTarget[] {
  const known = entry.byVersion.get(versionId)
  if (known !== undefined) return known
  const picked = pick(entry.rows, versionId)
  entry.byVersion.set(versionId, picked)
  return picked
}

function pick(rows: readonly Row[], versionId: string): readonly InstanceTarget[] {
  const exact: InstanceTarget[] = []
  const other: InstanceTarget[] = []
  const draining: InstanceTarget[] = []
  for (const row of rows) {
    if (row.state === 'healthy') (row.versionId === versionId ? exact : other).push(row.address)
    else if (row.state === 'draining' && row.versionId === versionId) draining.push(row.address)
  }
  return exact.length > 0 ? exact : other.length > 0 ? other : draining
}
