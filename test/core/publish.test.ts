import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BuildJob, BuildPlan, BuildSettings, Builder, PublishKind, Release, SourceSnapshot } from '../../src/builder/builder.js'
import type { OrganizationCaller } from '../../src/core/caller.js'
import { MiosaError } from '../../src/core/errors.js'
import { silentLog } from '../../src/core/log.js'
import { LOG_FLUSH_INTERVAL_MS, SHUTDOWN_BUILD_ERROR } from '../../src/core/publish.js'
import { createServices } from '../../src/core/services.js'
import { InProcessEvents } from '../../src/fleet/in-process-events.js'
import type { Services } from '../../src/core/services.js'
import type { RuntimeDriver, RuntimeRef } from '../../src/runtime/runtime-driver.js'
import { openSqliteStore } from '../../src/store/kysely/sqlite.js'
import type { SandboxRecord, Store } from '../../src/store/store.js'
import { insertSandboxRecord } from '../helpers/sandbox-records.js'

// The publish pipeline's control plane against a builder that only pretends: versions,
// numbering, logs (stored and followed), releases, the route after success and failure.
// The real builder (a container per build) is exercised end to end elsewhere.

/** A builder whose builds wait for `release()` when gated, and fail when told to. */
class FakeBuilder implements Builder {
  captures: RuntimeRef[] = []
  uploads = 0
  failWith: string | undefined
  output = 'release-one'
  private gates: (() => void)[] = []
  gated = false

  async captureSource(sandbox: RuntimeRef): Promise<SourceSnapshot> {
    this.captures.push(sandbox)
    return { sha256: 's'.repeat(64), size_bytes: 1234, files: 3 }
  }

  async captureUpload(tar: Readable): Promise<SourceSnapshot> {
    let size = 0
    for await (const chunk of tar) size += (chunk as Buffer).length
    this.uploads++
    return { sha256: 'u'.repeat(64), size_bytes: size, files: 1 }
  }

  async plan(_source: SourceSnapshot, kind: PublishKind, settings: BuildSettings): Promise<BuildPlan> {
    return {
      kind: kind === 'dynamic' ? 'dynamic' : 'static',
      detected: 'static-files',
      install: null,
      build: settings.build_command === undefined ? null : ['sh', '-lc', settings.build_command],
      output_dir: settings.output_dir ?? '.',
      start: null,
      spa_fallback: settings.spa_fallback ?? false,
      reasons: ['only static files: served as they are'],
    }
  }

  async archiveRelease(): Promise<{ sha256: string; size: number }> {
    throw new MiosaError('unavailable', 'this builder makes static releases only')
  }

  async build(job: BuildJob): Promise<Release> {
    job.onLog(`building ${job.versionId}`)
    if (this.gated) await new Promise<void>((resolve) => this.gates.push(resolve))
    if (job.signal?.aborted === true) throw new MiosaError('unavailable', 'build aborted')
    job.onLog('done building')
    if (this.failWith !== undefined) {
      job.onLog(`npm ERR! ${this.failWith}`)
      throw new MiosaError('invalid', `build failed: ${this.failWith}`)
    }
    return { sha256: this.output.padEnd(64, '0'), size_bytes: 99, kind: job.plan.kind }
  }

  release(): void {
    for (const gate of this.gates.splice(0)) gate()
  }

  async cleanup(): Promise<void> {}
}

let dir: string
let store: Store
let services: Services
let builder: FakeBuilder
let orgId: string
let caller: OrganizationCaller
let box: SandboxRecord

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'miosa-publish-'))
  store = openSqliteStore(join(dir, 'miosa.db'))
  await store.migrate()
  builder = new FakeBuilder()
  services = createServices({
    store,
    runtime: {} as RuntimeDriver,
    checkArchive: async () => {
      throw new Error('not used')
    },
    log: silentLog,
    events: new InProcessEvents(),
    builder,
  })
  const org = await services.organizations.create({ name: 'Publish Org' })
  orgId = org.id
  caller = { kind: 'organization', organization_id: org.id, api_key_id: 'key_publisher' }
  const ws = await services.workspaces.create(org.id, { name: 'Main', slug: 'main-ws' })
  box = await insertSandboxRecord(store, { organization_id: org.id, workspace_id: ws.id })
})

afterAll(async () => {
  await store?.close()
  await rm(dir, { recursive: true, force: true })
})

const scope = () => ({ organization_id: orgId })

describe('publish', () => {
  it('answers the version building at once; once built it is ready, recorded, logged and served', async () => {
    builder.gated = true
    const version = await services.publish.publishByName(orgId, caller, { name: 'Smile Dental', sandbox_id: box.id, settings: { spa_fallback: true } })
    expect(version).toMatchObject({ status: 'building', version_number: 1, kind: 'auto', environment: 'production', created_by: 'key_publisher', sandbox_id: box.id })
    expect(version.url).toMatch(/^http:\/\/smile-dental\.main-ws\.localhost:8081$/)
    const dep = await services.deployments.get(orgId, version.deployment_id)
    expect(dep.active_version_id).toBeNull()

    // Logs are written while it builds, and followers get what was written and what comes.
    await new Promise((resolve) => setTimeout(resolve, LOG_FLUSH_INTERVAL_MS * 3))
    const stored = await store.versions.get(scope(), version.id)
    expect(stored?.logs).toContain(`building ${version.id}`)
    const followed = await services.publish.follow(orgId, version.id)
    const lines: string[] = []
    const reading = (async () => {
      for await (const line of followed.lines) lines.push(line)
    })()
    builder.gated = false
    builder.release()
    await reading
    expect(lines).toContain(`building ${version.id}`)
    expect(lines).toContain('done building')
    expect(lines.at(-1)).toMatch(/^miosa: release /)
    expect(await followed.end()).toEqual({ status: 'ready', error: null })

    const ready = await services.deployments.getVersion(orgId, version.id)
    expect(ready).toMatchObject({ status: 'ready', source_sha256: 's'.repeat(64), release_sha256: 'release-one'.padEnd(64, '0'), release_kind: 'static' })
    expect(ready.plan?.spa_fallback).toBe(true)
    expect(ready.finished_at).not.toBeNull()
    expect(builder.captures.at(-1)).toEqual(box.runtime_ref)
    expect(await store.releases.get('release-one'.padEnd(64, '0'))).toMatchObject({ kind: 'static', size_bytes: 99 })
    const live = await services.deployments.get(orgId, version.deployment_id)
    expect(live.active_version_id).toBe(version.id)
    const history = await services.deployments.routeHistory(orgId, version.deployment_id, { limit: 10 })
    expect(history.data).toEqual([expect.objectContaining({ reason: 'publish', from_version_id: null, to_version_id: version.id, actor: 'key_publisher' })])
    expect(await services.publish.logs(orgId, version.id)).toContain('done building')
    expect(await services.deployments.resolveApp({ deploymentSlug: 'smile-dental', workspaceSlug: 'main-ws' })).toMatchObject({
      versionId: version.id,
      spaFallback: true,
    })
  })

  it('a second publish by name is version 2 of the same deployment; the same output is one release', async () => {
    const v2 = await services.publish.publishByName(orgId, caller, { name: 'Smile Dental', sandbox_id: box.id }, { wait: true })
    expect(v2).toMatchObject({ status: 'ready', version_number: 2, release_sha256: 'release-one'.padEnd(64, '0') })
    expect((await services.deployments.get(orgId, v2.deployment_id)).active_version_id).toBe(v2.id)
    const deployments = await services.deployments.list(orgId, { limit: 10, slug: 'smile-dental' })
    expect(deployments.data).toHaveLength(1)
  })

  it('a failed build keeps its logs and error, and the active version keeps serving', async () => {
    const [dep] = (await services.deployments.list(orgId, { limit: 1, slug: 'smile-dental' })).data
    const active = dep?.active_version_id
    builder.failWith = 'missing script: build'
    try {
      const failed = await services.publish.publish(orgId, caller, dep?.id as string, { sandbox_id: box.id }, { wait: true })
      expect(failed).toMatchObject({ status: 'failed', version_number: 3, error: 'build failed: missing script: build', release_sha256: null })
      const logs = await services.publish.logs(orgId, failed.id)
      expect(logs).toContain('npm ERR! missing script: build')
      expect(logs).toContain('miosa: build failed: build failed: missing script: build')
    } finally {
      builder.failWith = undefined
    }
    expect((await services.deployments.get(orgId, dep?.id as string)).active_version_id).toBe(active)
  })

  it('concurrent publishes get distinct consecutive numbers, and the highest one ends up served', async () => {
    const dep = await services.deployments.create(orgId, { name: 'Busy App' })
    const versions = await Promise.all(
      Array.from({ length: 10 }, () => services.publish.publish(orgId, caller, dep.id, { sandbox_id: box.id }, { wait: true })),
    )
    expect(versions.map((v) => v.version_number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    const top = versions.find((v) => v.version_number === 10)
    expect((await services.deployments.get(orgId, dep.id)).active_version_id).toBe(top?.id)
  })

  it('publishes an uploaded directory', async () => {
    const dep = await services.deployments.create(orgId, { name: 'Uploaded Site' })
    const version = await services.publish.publishUpload(orgId, caller, dep.id, Readable.from([Buffer.from('a tarball')]), { kind: 'static' }, { wait: true })
    expect(version).toMatchObject({ status: 'ready', sandbox_id: null, source_sha256: 'u'.repeat(64), kind: 'static' })
    expect(builder.uploads).toBe(1)
  })

  it('shutdown aborts running builds and records them failed, leaving none building', async () => {
    const dep = await services.deployments.create(orgId, { name: 'Shutdown App' })
    builder.gated = true
    const version = await services.publish.publish(orgId, caller, dep.id, { sandbox_id: box.id })
    const stopped = services.publish.shutdown()
    builder.gated = false
    builder.release()
    await stopped
    expect(await services.deployments.getVersion(orgId, version.id)).toMatchObject({ status: 'failed', error: SHUTDOWN_BUILD_ERROR })
  })

  it('plan captures and plans without making a version', async () => {
    const dep = await services.deployments.create(orgId, { name: 'Planned App', spa_fallback: true })
    const result = await services.publish.plan(orgId, { sandbox_id: box.id, settings: { build_command: 'npm run build', output_dir: 'dist' } }, dep.id)
    expect(result.plan).toMatchObject({ output_dir: 'dist', build: ['sh', '-lc', 'npm run build'], spa_fallback: true })
    expect(result.source.sha256).toBe('s'.repeat(64))
    expect((await services.deployments.listVersions(orgId, dep.id, { limit: 10 })).data).toEqual([])
    const uploaded = await services.publish.planUpload(orgId, dep.id, Readable.from([Buffer.from('tar')]), { kind: 'static' })
    expect(uploaded.source.sha256).toBe('u'.repeat(64))
    expect(uploaded.plan.spa_fallback).toBe(true)
  })
})
